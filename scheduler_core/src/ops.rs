//! Small pure helpers shared by the filters: Nova's `extra_specs_ops.match`, Python-like float
//! parsing, image-property canonicalisation and the `img_hv_requested_version` predicate.

/// Parse like Python's `float(s)`, returning `None` where Python raises `ValueError`.
pub fn py_float(s: &str) -> Option<f64> {
    let t = s.trim();
    if t.is_empty() {
        return None;
    }
    if t.contains('_') {
        // Python allows single underscores between digits only.
        let b = t.as_bytes();
        for (i, &c) in b.iter().enumerate() {
            if c == b'_' {
                let ok = i > 0
                    && i + 1 < b.len()
                    && b[i - 1].is_ascii_digit()
                    && b[i + 1].is_ascii_digit();
                if !ok {
                    return None;
                }
            }
        }
        return t.replace('_', "").parse::<f64>().ok();
    }
    t.parse::<f64>().ok()
}

fn num_op(value: &str, req: &str, f: fn(f64, f64) -> bool) -> bool {
    match (py_float(value), py_float(req)) {
        (Some(a), Some(b)) => f(a, b),
        _ => false,
    }
}

/// Nova's `nova.scheduler.filters.extra_specs_ops.match(value, req)`.
/// Where Nova would raise (unparsable float, a dangling `<or>`), this returns `false`.
pub fn match_spec(value: &str, req: &str) -> bool {
    let mut words = req.split_whitespace();
    let op = match words.next() {
        Some(op) => op,
        None => return value == req,
    };
    let known = matches!(
        op,
        "=" | "<in>"
            | "<all-in>"
            | "=="
            | "!="
            | ">="
            | "<="
            | "s=="
            | "s!="
            | "s<"
            | "s<="
            | "s>"
            | "s>="
            | "<or>"
    );
    if !known {
        return value == req;
    }
    if op == "<or>" {
        // <or> v1 <or> v2 <or> v3
        loop {
            match words.next() {
                Some(w) if w == value => return true,
                Some(_) => {}
                None => return false,
            }
            // the "<or>" keyword
            if words.next().is_none() {
                return false;
            }
        }
    }
    if op == "<all-in>" {
        let rest: Vec<&str> = words.collect();
        if rest.is_empty() {
            return false;
        }
        return rest.iter().all(|w| value.contains(w));
    }
    let arg = match words.next() {
        Some(a) => a,
        None => return false,
    };
    match op {
        "=" | ">=" => num_op(value, arg, |a, b| a >= b),
        "==" => num_op(value, arg, |a, b| a == b),
        "!=" => num_op(value, arg, |a, b| a != b),
        "<=" => num_op(value, arg, |a, b| a <= b),
        "<in>" => value.contains(arg),
        "s==" => value == arg,
        "s!=" => value != arg,
        "s<" => value < arg,
        "s<=" => value <= arg,
        "s>" => value > arg,
        "s>=" => value >= arg,
        _ => false,
    }
}

/// `fields.Architecture.canonicalize`: lower case plus the usual aliases.
pub fn canon_arch(s: &str) -> String {
    let l = s.trim().to_ascii_lowercase();
    match l.as_str() {
        "i386" | "i486" | "i586" | "x86_32" | "ia32" => "i686".into(),
        "amd64" | "x64" | "x86-64" => "x86_64".into(),
        "arm64" => "aarch64".into(),
        "ppc64el" => "ppc64le".into(),
        _ => l,
    }
}

/// `fields.HVType.canonicalize`.
pub fn canon_hv_type(s: &str) -> String {
    let l = s.trim().to_ascii_lowercase();
    match l.as_str() {
        "xapi" => "xen".into(),
        _ => l,
    }
}

/// `fields.VMMode.canonicalize`.
pub fn canon_vm_mode(s: &str) -> String {
    let l = s.trim().to_ascii_lowercase();
    match l.as_str() {
        "pv" => "xen".into(),
        "hv" | "baremetal" => "hvm".into(),
        _ => l,
    }
}

/// Nova's `versionutils.convert_version_to_str` as a list of numbers (6002001 -> [6, 2, 1]).
pub fn version_parts(mut v: i64) -> Vec<i64> {
    let mut out = Vec::new();
    while v > 0 {
        out.push(v % 1000);
        v /= 1000;
    }
    out.reverse();
    out
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmpOp {
    Lt,
    Le,
    Eq,
    Ne,
    Gt,
    Ge,
}

/// A parsed `img_hv_requested_version` such as `">= 6.0, < 7"`.
pub type VersionPredicate = Vec<(CmpOp, Vec<i64>)>;

/// Parse a version predicate; `None` if malformed (the filter then rejects the host).
pub fn parse_version_predicate(s: &str) -> Option<VersionPredicate> {
    let mut out = Vec::new();
    for part in s.split(',') {
        let p = part.trim();
        let (op, rest) = if let Some(r) = p.strip_prefix("<=") {
            (CmpOp::Le, r)
        } else if let Some(r) = p.strip_prefix(">=") {
            (CmpOp::Ge, r)
        } else if let Some(r) = p.strip_prefix("==") {
            (CmpOp::Eq, r)
        } else if let Some(r) = p.strip_prefix("!=") {
            (CmpOp::Ne, r)
        } else if let Some(r) = p.strip_prefix('<') {
            (CmpOp::Lt, r)
        } else if let Some(r) = p.strip_prefix('>') {
            (CmpOp::Gt, r)
        } else {
            return None;
        };
        let ver = parse_version(rest.trim())?;
        out.push((op, ver));
    }
    if out.is_empty() {
        None
    } else {
        Some(out)
    }
}

/// "6.2.1" -> [6, 2, 1]; digits and dots only.
pub fn parse_version(s: &str) -> Option<Vec<i64>> {
    if s.is_empty() {
        return None;
    }
    let mut v = Vec::new();
    for c in s.split('.') {
        if c.is_empty() || c.len() > 9 || !c.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        v.push(c.parse::<i64>().ok()?);
    }
    Some(v)
}

/// Compare versions as zero-padded tuples ("6.0" == "6.0.0").
pub fn cmp_version(a: &[i64], b: &[i64]) -> std::cmp::Ordering {
    let n = a.len().max(b.len());
    for i in 0..n {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        match x.cmp(&y) {
            std::cmp::Ordering::Equal => {}
            o => return o,
        }
    }
    std::cmp::Ordering::Equal
}

pub fn predicate_satisfied(pred: &VersionPredicate, ver: &[i64]) -> bool {
    use std::cmp::Ordering::*;
    pred.iter().all(|(op, v)| {
        let o = cmp_version(ver, v);
        match op {
            CmpOp::Lt => o == Less,
            CmpOp::Le => o != Greater,
            CmpOp::Eq => o == Equal,
            CmpOp::Ne => o != Equal,
            CmpOp::Gt => o == Greater,
            CmpOp::Ge => o != Less,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn match_plain_and_numeric() {
        assert!(match_spec("abc", "abc"));
        assert!(!match_spec("abc", "abd"));
        assert!(match_spec("4", "= 2"));
        assert!(!match_spec("1", "= 2"));
        assert!(match_spec("2", "== 2.0"));
        assert!(match_spec("3", "!= 2"));
        assert!(match_spec("3", ">= 3"));
        assert!(match_spec("3", "<= 3"));
        assert!(!match_spec("x", ">= 3"));
        assert!(!match_spec("3", ">="));
        assert!(match_spec("1_0", "== 10"));
    }

    #[test]
    fn match_string_ops() {
        assert!(match_spec("abc", "s== abc"));
        assert!(match_spec("abc", "s!= abd"));
        assert!(match_spec("abc", "s< abd"));
        assert!(match_spec("abc", "s<= abc"));
        assert!(match_spec("abd", "s> abc"));
        assert!(match_spec("abc", "s>= abc"));
        assert!(match_spec("sse4 avx", "<in> avx"));
        assert!(!match_spec("sse4", "<in> avx"));
        assert!(match_spec("sse4 avx", "<all-in> avx sse4"));
        assert!(!match_spec("sse4 avx", "<all-in> avx aes"));
    }

    #[test]
    fn match_or() {
        assert!(match_spec("b", "<or> a <or> b"));
        assert!(!match_spec("c", "<or> a <or> b"));
        assert!(!match_spec("c", "<or>"));
        assert!(match_spec("a", "<or> a"));
    }

    #[test]
    fn versions() {
        assert_eq!(version_parts(6002001), vec![6, 2, 1]);
        assert_eq!(version_parts(0), Vec::<i64>::new());
        let p = parse_version_predicate(">= 6.0, < 7").unwrap();
        assert!(predicate_satisfied(&p, &[6, 2, 1]));
        assert!(!predicate_satisfied(&p, &[7, 0, 0]));
        assert!(predicate_satisfied(&p, &[6]));
        assert!(parse_version_predicate("6.0").is_none());
        assert!(parse_version_predicate(">= x").is_none());
    }

    #[test]
    fn canon() {
        assert_eq!(canon_arch("AMD64"), "x86_64");
        assert_eq!(canon_arch("i386"), "i686");
        assert_eq!(canon_vm_mode("hv"), "hvm");
        assert_eq!(canon_hv_type("XAPI"), "xen");
        assert_eq!(canon_hv_type("KVM"), "kvm");
    }
}
