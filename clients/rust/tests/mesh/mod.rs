//! The real mesh clients/testmesh.py runs (four services on loopback, fake driver) behind a
//! proxy that can cut every connection. One per test binary; it stops when the binary exits
//! (its stdin closes).
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Mutex, OnceLock};

pub struct Mesh {
    pub api: String,
    pub data_dir: PathBuf,
    pub image: String,
    pub flavor: String,
    pub huge_flavor: String,
    control: Mutex<(ChildStdin, BufReader<ChildStdout>)>,
    _child: Child,
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

pub fn mesh() -> &'static Mesh {
    static MESH: OnceLock<Mesh> = OnceLock::new();
    MESH.get_or_init(|| {
        let root = repo_root();
        let pythonpath = format!(
            "{}:{}",
            root.display(),
            std::env::var("PYTHONPATH").unwrap_or_default()
        );
        let mut child = Command::new("python3")
            .arg(root.join("clients/testmesh.py"))
            .env("PYTHONPATH", pythonpath)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start clients/testmesh.py");
        let stdin = child.stdin.take().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout
            .read_line(&mut line)
            .expect("testmesh.py's address line");
        let info: serde_json::Value =
            serde_json::from_str(&line).expect("testmesh.py printed JSON");
        let field = |k: &str| {
            info[k]
                .as_str()
                .unwrap_or_else(|| panic!("no {k} in {line}"))
                .to_owned()
        };
        Mesh {
            api: field("api"),
            data_dir: PathBuf::from(field("data_dir")),
            image: field("image"),
            flavor: field("flavor"),
            huge_flavor: field("huge_flavor"),
            control: Mutex::new((stdin, stdout)),
            _child: child,
        }
    })
}

impl Mesh {
    /// The admin token the mesh wrote, or "" while the API has no authentication.
    pub fn token(&self) -> String {
        std::fs::read_to_string(self.data_dir.join("admin.token"))
            .map(|t| t.trim().to_owned())
            .unwrap_or_default()
    }

    /// Drop every open connection to the API; returns once it has.
    pub fn cut(&self) {
        let mut control = self.control.lock().unwrap();
        let (stdin, stdout) = &mut *control;
        stdin.write_all(b"cut\n").unwrap();
        stdin.flush().unwrap();
        let mut ack = String::new();
        stdout.read_line(&mut ack).unwrap();
        assert_eq!(ack.trim(), "cut", "cut not acknowledged");
    }
}
