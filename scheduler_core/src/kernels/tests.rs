//! Each kernel's scalar and AVX2 versions on the same data (the AVX2 half runs wherever the
//! CPU has AVX2; without it only the scalar half can run and the test says so).

use super::*;

fn rows_and_cands(n: usize, seed: u64) -> (Vec<Row>, Vec<u32>) {
    let mut x = seed;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let rows: Vec<Row> = (0..n)
        .map(|_| {
            let mut r = [0.0; LANES];
            for v in r.iter_mut() {
                *v = (next() % 100_000) as f64 - 50_000.0;
            }
            r
        })
        .collect();
    // every other slot, plus an odd tail (exercises the remainders)
    let cands: Vec<u32> = (0..n as u32).filter(|i| i % 2 == 0 || i % 7 == 3).collect();
    (rows, cands)
}

#[test]
fn minmax_and_approx_scores_agree() {
    if !has_avx2() {
        eprintln!("no AVX2 on this CPU: only the scalar kernels ran");
    }
    for (n, seed) in [(0, 1), (1, 2), (3, 3), (7, 4), (1001, 5), (4096, 6)] {
        let (rows, cands) = rows_and_cands(n, seed);
        let mv: Row = [-50_000.0, -40_000.0, 0.0, 1.0, 2.0, -3.0, 4.0, 0.0];
        let kv: Row = [1e-5, 2e-5, -1e-5, 0.0, 3.0, 1e6, 1e-4, 1.0];
        let bound = 64.0 * f64::EPSILON * kv.iter().map(|k| k.abs() * 1e5).sum::<f64>();
        let (lo, hi) = scalar::minmax_rows(&rows, &cands);
        let mut want = Vec::new();
        scalar::approx_scores(&rows, &cands, &mv, &kv, &mut want);
        for (o, &c) in want.iter().zip(&cands) {
            assert_eq!(*o, approx_score(&rows[c as usize], &mv, &kv));
        }
        #[cfg(target_arch = "x86_64")]
        if has_avx2() {
            // SAFETY: AVX2 support was just checked.
            let (lo2, hi2) = unsafe { avx2::minmax_rows(&rows, &cands) };
            assert_eq!((lo, hi), (lo2, hi2), "n={n}");
            let mut got = vec![f64::NAN; 3];
            // SAFETY: as above.
            unsafe { avx2::approx_scores(&rows, &cands, &mv, &kv, &mut got) };
            assert_eq!(got.len(), want.len());
            for (a, b) in got.iter().zip(&want) {
                assert!((a - b).abs() <= bound, "n={n}: {a} vs {b}");
            }
        }
        assert_eq!((lo, hi), minmax_rows(&rows, &cands));
    }
}

#[test]
fn scan_agrees_and_attributes_first_failing_filter() {
    let n = 1003;
    let mut x = 99u64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let fr: Vec<f64> = (0..n).map(|_| (next() % 100) as f64).collect();
    let fc: Vec<f64> = (0..n).map(|_| (next() % 100) as f64).collect();
    let fl: Vec<u8> = (0..n).map(|_| (next() % 4) as u8).collect();
    let az: Vec<u32> = (0..n).map(|_| (next() % 3) as u32).collect();
    let io: Vec<i64> = (0..n).map(|_| (next() % 10) as i64).collect();
    for (use_equals, n_below) in [(false, 0), (true, 0), (false, 1), (true, 2)] {
        let p = Scan {
            at_least: [(&fr, 20.0, 2), (&fc, 10.0, 0), (&fr, 0.0, PASS)],
            flags: (&fl, 3, 1),
            equals: (&az, 1, 3),
            use_equals,
            below: [(&io, 8, 4), (&io, 5, 5)],
            n_below,
            npos: 6,
        };
        let run = |avx: bool| {
            let (mut c, mut f, mut mm) = (vec![0u32; n + 8], vec![0u32; n + 8], [0u32; 8]);
            let (w, k) = if avx {
                #[cfg(target_arch = "x86_64")]
                // SAFETY: only called when AVX2 is present.
                unsafe {
                    avx2::scan(&p, n, &mut c, &mut f, &mut mm)
                }
                #[cfg(not(target_arch = "x86_64"))]
                unreachable!()
            } else {
                scalar::scan(&p, n, &mut c, &mut f, &mut mm)
            };
            c.truncate(w);
            f.truncate(k);
            (c, f, mm)
        };
        let (c, f, mm) = run(false);
        // the reference: each host's first failing position, by plain code
        let mut want_mm = [0u32; 8];
        let mut want_c = Vec::new();
        for i in 0..n {
            let fails = [
                fc[i] < 10.0,
                fl[i] & 3 != 3,
                fr[i] < 20.0,
                use_equals && az[i] != 1,
                n_below >= 1 && io[i] >= 8,
                n_below >= 2 && io[i] >= 5,
            ];
            match fails.iter().position(|&b| b) {
                Some(k) => want_mm[k] += 1,
                None => want_c.push(i as u32),
            }
        }
        assert_eq!(c, want_c);
        assert_eq!(mm, want_mm);
        assert_eq!(c.len() + f.len(), n);
        if has_avx2() {
            assert_eq!(run(true), (c, f, mm));
        }
    }
}
