//! `cargo run --release --no-default-features --example bench -- 10000`
use scheduler_core::{Config, HostSpec, HostTable, Request};
use std::time::Instant;

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000);
    let iters: usize = std::env::args()
        .nth(2)
        .and_then(|s| s.parse().ok())
        .unwrap_or(5000);
    let cfg = Config {
        seed: Some(1),
        ..Config::default()
    };
    let mut t = HostTable::new(cfg);
    let mut x: u64 = 42;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let sizes = [(32, 131072, 1000), (64, 262144, 2000), (16, 65536, 500)];
    for i in 0..n {
        let s = sizes[(rnd() % 3) as usize];
        let mut h = HostSpec::new(&format!("host-{i}"), s.0, s.1, s.2);
        h.availability_zone = format!("az{}", i % 3);
        h.enabled = rnd() % 50 != 0;
        h.up = rnd() % 50 != 0;
        h.hypervisor_version = if rnd() % 2 == 0 { 6002000 } else { 7000000 };
        h.io_ops = (rnd() % 5) as i64;
        h.num_instances = (rnd() % 20) as i64;
        t.upsert(&h).unwrap();
    }
    for i in 0..n / 2 {
        let h = rnd() as usize % n;
        t.claim(
            &format!("pre{i}"),
            &format!("host-{h}"),
            4,
            [4096, 8192, 16384][(rnd() % 3) as usize],
            40,
        )
        .unwrap();
    }
    let req = Request {
        instance_ids: vec!["x".into()],
        vcpus: 2,
        memory_mb: 4096,
        root_gb: 20,
        ..Default::default()
    };
    let mut ts = Vec::with_capacity(iters);
    for _ in 0..iters {
        let t0 = Instant::now();
        let (out, _) = t.plan(&req);
        ts.push(t0.elapsed().as_secs_f64() * 1e6);
        assert!(out.ok);
    }
    ts.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "n={n} min={:.1}us p10={:.1}us p50={:.1}us p99={:.1}us mem={:.1}MiB",
        ts[0],
        ts[iters / 10],
        ts[iters / 2],
        ts[iters * 99 / 100],
        t.memory_bytes() as f64 / 1048576.0
    );
}
