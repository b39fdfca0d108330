//! Unit tests per filter and weigher (pure Rust; `cargo test -p scheduler_core`).

use crate::*;
use std::collections::HashMap;

fn host(name: &str, vcpus: i64, mem: i64, disk: i64) -> HostSpec {
    HostSpec::new(name, vcpus, mem, disk)
}

fn table_with(filters: &[Filter], hosts: Vec<HostSpec>) -> HostTable {
    let cfg = Config {
        filters: filters.to_vec(),
        seed: Some(1),
        ..Config::default()
    };
    let mut t = HostTable::new(cfg);
    for h in &hosts {
        assert!(t.upsert(h).unwrap());
    }
    t
}

fn req(vcpus: i64, mem: i64, disk: i64) -> Request {
    Request {
        instance_ids: vec!["i".into()],
        vcpus,
        memory_mb: mem,
        root_gb: disk,
        ..Default::default()
    }
}

fn passing(t: &HostTable, f: Filter, r: &Request) -> Vec<String> {
    t.hosts_passing(f, r)
}

fn chosen(t: &HostTable, r: &Request) -> Vec<String> {
    t.plan(r).0.selections.into_iter().map(|s| s.host).collect()
}

#[test]
fn ram_filter_uses_ratio_reserved_and_claims() {
    let mut a = host("a", 4, 4096, 100);
    a.reserved_memory_mb = 1024;
    a.ram_allocation_ratio = 1.5; // (4096 - 1024) * 1.5 = 4608
    let mut t = table_with(&[Filter::Ram], vec![a]);
    assert_eq!(passing(&t, Filter::Ram, &req(1, 4608, 0)), vec!["a"]);
    assert!(passing(&t, Filter::Ram, &req(1, 4609, 0)).is_empty());
    t.claim("x", "a", 1, 608, 0).unwrap();
    assert_eq!(passing(&t, Filter::Ram, &req(1, 4000, 0)), vec!["a"]);
    assert!(passing(&t, Filter::Ram, &req(1, 4001, 0)).is_empty());
    assert!(t.release("x"));
    assert!(!t.release("x"));
    assert_eq!(passing(&t, Filter::Ram, &req(1, 4608, 0)), vec!["a"]);
}

#[test]
fn core_filter() {
    let mut a = host("a", 4, 4096, 100);
    a.cpu_allocation_ratio = 2.0;
    a.reserved_vcpus = 1; // (4 - 1) * 2 = 6
    let t = table_with(&[Filter::Core], vec![a]);
    assert_eq!(passing(&t, Filter::Core, &req(6, 1, 0)).len(), 1);
    assert!(passing(&t, Filter::Core, &req(7, 1, 0)).is_empty());
}

#[test]
fn disk_filter_counts_ephemeral_and_swap() {
    let t = table_with(&[Filter::Disk], vec![host("a", 4, 4096, 20)]);
    let mut r = req(1, 1, 10);
    r.ephemeral_gb = 8;
    r.swap_mb = 2048; // 10 + 8 + 2 = 20
    assert_eq!(r.disk_gb(), 20);
    assert_eq!(passing(&t, Filter::Disk, &r).len(), 1);
    r.swap_mb = 2049;
    assert!(passing(&t, Filter::Disk, &r).is_empty());
}

#[test]
fn compute_filter() {
    let mut b = host("b", 4, 4096, 20);
    b.enabled = false;
    let mut t = table_with(
        &[Filter::Compute],
        vec![host("a", 4, 4096, 20), b, host("c", 4, 4096, 20)],
    );
    t.set_up("c", false);
    assert_eq!(passing(&t, Filter::Compute, &req(1, 1, 1)), vec!["a"]);
}

#[test]
fn availability_zone_filter_with_aggregate_zones() {
    let mut b = host("b", 4, 4096, 20);
    b.availability_zone = "az2".into();
    let mut c = host("c", 4, 4096, 20);
    c.aggregates = vec![(
        "agg".into(),
        vec![("availability_zone".into(), "az2, az3".into())],
    )];
    let t = table_with(
        &[Filter::AvailabilityZone],
        vec![host("a", 4, 4096, 20), b, c],
    );
    let mut r = req(1, 1, 1);
    assert_eq!(passing(&t, Filter::AvailabilityZone, &r).len(), 3);
    r.availability_zone = "az2".into();
    assert_eq!(passing(&t, Filter::AvailabilityZone, &r), vec!["b", "c"]);
    r.availability_zone = "az3".into();
    assert_eq!(passing(&t, Filter::AvailabilityZone, &r), vec!["c"]);
    r.availability_zone = "nova".into();
    assert_eq!(passing(&t, Filter::AvailabilityZone, &r), vec!["a"]);
    let out = t
        .plan(&Request {
            availability_zone: "nowhere".into(),
            ..req(1, 1, 1)
        })
        .0;
    assert!(!out.ok);
    assert_eq!(
        out.explanation.summary,
        "no valid host: 3 hosts; AvailabilityZoneFilter rejected 3"
    );
}

#[test]
fn compute_capabilities_filter_scopes_and_ops() {
    let mut a = host("a", 4, 4096, 20);
    a.capabilities = vec![("gpu".into(), "2".into())];
    a.cpu_info =
        r#"{"vendor": "intel", "maxphysaddr": {"bits": 46}, "features": ["avx2", "sse4.2"]}"#
            .into();
    a.hypervisor_version = 8_002_000;
    let t = table_with(
        &[Filter::ComputeCapabilities],
        vec![a, host("b", 4, 4096, 20)],
    );
    let with = |k: &str, v: &str| Request {
        flavor_extra_specs: vec![(k.into(), v.into())],
        ..req(1, 1, 1)
    };
    assert_eq!(
        passing(
            &t,
            Filter::ComputeCapabilities,
            &with("capabilities:gpu", ">= 2")
        ),
        vec!["a"]
    );
    assert!(passing(
        &t,
        Filter::ComputeCapabilities,
        &with("capabilities:gpu", ">= 3")
    )
    .is_empty());
    assert_eq!(
        passing(&t, Filter::ComputeCapabilities, &with("gpu", "2")),
        vec!["a", "b"]
    );
    // unscoped: binds the hosts that report the key, skipped by the others (Nova's has_attr)
    assert_eq!(
        passing(&t, Filter::ComputeCapabilities, &with("gpu", "3")),
        vec!["b"]
    );
    assert!(passing(
        &t,
        Filter::ComputeCapabilities,
        &with("capabilities:ssd", "true")
    )
    .is_empty());
    assert_eq!(
        passing(&t, Filter::ComputeCapabilities, &with("ssd", "true")),
        vec!["a", "b"]
    );
    assert_eq!(
        passing(
            &t,
            Filter::ComputeCapabilities,
            &with("capabilities:cpu_info:vendor", "<or> amd <or> intel")
        ),
        vec!["a"]
    );
    // the host's own attributes, nested cpu_info parsed step by step, Python's str() compared
    assert_eq!(
        passing(
            &t,
            Filter::ComputeCapabilities,
            &with("capabilities:hypervisor_version", ">= 8000000")
        ),
        vec!["a"]
    );
    assert_eq!(
        passing(
            &t,
            Filter::ComputeCapabilities,
            &with("capabilities:cpu_info:features", "<in> 'avx2'")
        ),
        vec!["a"]
    );
    assert_eq!(
        passing(
            &t,
            Filter::ComputeCapabilities,
            &with("hw:maxphysaddr_bits", "46")
        ),
        vec!["a"]
    );
    assert!(passing(
        &t,
        Filter::ComputeCapabilities,
        &with("hw:maxphysaddr_bits", "48")
    )
    .is_empty());
    // unscoped host attribute: binds every host (b has no hypervisor version: fails)
    assert_eq!(
        passing(
            &t,
            Filter::ComputeCapabilities,
            &with("hypervisor_version", ">= 1")
        ),
        vec!["a"]
    );
    // other scopes are ignored
    assert_eq!(
        passing(
            &t,
            Filter::ComputeCapabilities,
            &with("hw:cpu_policy", "dedicated")
        )
        .len(),
        2
    );
}

#[test]
fn image_properties_filter() {
    let mut a = host("a", 4, 4096, 20);
    a.cpu_arch = "x86_64".into();
    a.hypervisor_type = "QEMU".into();
    a.hypervisor_version = 6_002_000;
    let mut b = host("b", 4, 4096, 20);
    b.cpu_arch = "aarch64".into();
    b.hypervisor_type = "kvm".into();
    let t = table_with(
        &[Filter::ImageProperties],
        vec![a, b, host("c", 4, 4096, 20)],
    );
    let img = |props: &[(&str, &str)]| Request {
        image_properties: props
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..req(1, 1, 1)
    };
    assert_eq!(passing(&t, Filter::ImageProperties, &img(&[])).len(), 3);
    assert_eq!(
        passing(
            &t,
            Filter::ImageProperties,
            &img(&[("hw_architecture", "amd64")])
        ),
        vec!["a"]
    );
    assert_eq!(
        passing(&t, Filter::ImageProperties, &img(&[("img_hv_type", "kvm")])),
        vec!["b"]
    );
    assert_eq!(
        passing(&t, Filter::ImageProperties, &img(&[("hw_vm_mode", "hvm")])),
        vec!["a", "b"]
    );
    assert_eq!(
        passing(
            &t,
            Filter::ImageProperties,
            &img(&[
                ("hw_architecture", "x86_64"),
                ("img_hv_requested_version", ">= 6.2")
            ])
        ),
        vec!["a"]
    );
    assert!(passing(
        &t,
        Filter::ImageProperties,
        &img(&[
            ("hw_architecture", "x86_64"),
            ("img_hv_requested_version", ">= 7")
        ])
    )
    .is_empty());
}

#[test]
fn server_group_filters() {
    let hosts = vec![
        host("a", 4, 4096, 20),
        host("b", 4, 4096, 20),
        host("c", 4, 4096, 20),
    ];
    let t = table_with(
        &[Filter::ServerGroupAffinity, Filter::ServerGroupAntiAffinity],
        hosts,
    );
    let g = |p: &str, hs: &[&str]| Request {
        group_policy: p.into(),
        group_hosts: hs.iter().map(|s| s.to_string()).collect(),
        ..req(1, 1, 1)
    };
    assert_eq!(
        passing(&t, Filter::ServerGroupAffinity, &g("affinity", &["b"])),
        vec!["b"]
    );
    assert_eq!(
        passing(&t, Filter::ServerGroupAffinity, &g("affinity", &[])).len(),
        3
    );
    assert_eq!(
        passing(&t, Filter::ServerGroupAffinity, &g("anti-affinity", &["b"])).len(),
        3
    );
    assert_eq!(
        passing(
            &t,
            Filter::ServerGroupAntiAffinity,
            &g("anti-affinity", &["b"])
        ),
        vec!["a", "c"]
    );
    // batch: anti-affinity spreads, affinity packs
    let mut r = g("anti-affinity", &[]);
    r.instance_ids = vec!["1".into(), "2".into(), "3".into()];
    let mut hs = chosen(&t, &r);
    hs.sort();
    assert_eq!(hs, vec!["a", "b", "c"]);
    r.instance_ids.push("4".into());
    assert!(!t.plan(&r).0.ok);
    r.group_policy = "affinity".into();
    let hs = chosen(&t, &r);
    assert!(hs.iter().all(|h| h == &hs[0]));
}

#[test]
fn same_and_different_host_filters() {
    let mut t = table_with(
        &[Filter::SameHost, Filter::DifferentHost],
        vec![host("a", 4, 4096, 20), host("b", 4, 4096, 20)],
    );
    t.claim("vm1", "b", 1, 1, 1).unwrap();
    let r = Request {
        same_host: vec!["vm1".into()],
        ..req(1, 1, 1)
    };
    assert_eq!(passing(&t, Filter::SameHost, &r), vec!["b"]);
    let r = Request {
        different_host: vec!["vm1".into()],
        ..req(1, 1, 1)
    };
    assert_eq!(passing(&t, Filter::DifferentHost, &r), vec!["a"]);
    let r = Request {
        same_host: vec!["unknown".into()],
        ..req(1, 1, 1)
    };
    assert!(passing(&t, Filter::SameHost, &r).is_empty());
}

#[test]
fn io_ops_and_num_instances_filters() {
    let mut a = host("a", 4, 4096, 20);
    a.io_ops = 8;
    a.num_instances = 50;
    let mut b = host("b", 4, 4096, 20);
    b.io_ops = 7;
    b.num_instances = 49;
    let mut t = table_with(&[Filter::IoOps, Filter::NumInstances], vec![a, b]);
    assert_eq!(passing(&t, Filter::IoOps, &req(1, 1, 1)), vec!["b"]);
    assert_eq!(passing(&t, Filter::NumInstances, &req(1, 1, 1)), vec!["b"]);
    // a claim bumps both counters (consume_from_request)
    t.claim("x", "b", 1, 1, 1).unwrap();
    assert!(passing(&t, Filter::IoOps, &req(1, 1, 1)).is_empty());
    assert!(passing(&t, Filter::NumInstances, &req(1, 1, 1)).is_empty());
    t.release("x");
    assert_eq!(passing(&t, Filter::IoOps, &req(1, 1, 1)), vec!["b"]);
}

#[test]
fn aggregate_instance_extra_specs_filter() {
    let mut a = host("a", 4, 4096, 20);
    a.aggregates = vec![("fast".into(), vec![("ssd".into(), "true".into())])];
    let t = table_with(
        &[Filter::AggregateInstanceExtraSpecs],
        vec![a, host("b", 4, 4096, 20)],
    );
    let with = |k: &str, v: &str| Request {
        flavor_extra_specs: vec![(k.into(), v.into())],
        ..req(1, 1, 1)
    };
    assert_eq!(
        passing(
            &t,
            Filter::AggregateInstanceExtraSpecs,
            &with("aggregate_instance_extra_specs:ssd", "true")
        ),
        vec!["a"]
    );
    assert_eq!(
        passing(
            &t,
            Filter::AggregateInstanceExtraSpecs,
            &with("ssd", "true")
        ),
        vec!["a"]
    );
    assert_eq!(
        passing(
            &t,
            Filter::AggregateInstanceExtraSpecs,
            &with("capabilities:ssd", "x")
        )
        .len(),
        2
    );
}

#[test]
fn aggregate_multi_tenancy_isolation() {
    let mut a = host("a", 4, 4096, 20);
    a.aggregates = vec![(
        "t".into(),
        vec![("filter_tenant_id".into(), "p1,p2".into())],
    )];
    let t = table_with(
        &[Filter::AggregateMultiTenancyIsolation],
        vec![a, host("b", 4, 4096, 20)],
    );
    let p = |id: &str| Request {
        project_id: id.into(),
        ..req(1, 1, 1)
    };
    assert_eq!(
        passing(&t, Filter::AggregateMultiTenancyIsolation, &p("p2")).len(),
        2
    );
    assert_eq!(
        passing(&t, Filter::AggregateMultiTenancyIsolation, &p("p3")),
        vec!["b"]
    );
}

#[test]
fn isolated_hosts_filter() {
    let cfg = Config {
        filters: vec![Filter::IsolatedHosts],
        isolated_hosts: vec!["iso".into()],
        isolated_images: vec!["img-iso".into()],
        ..Config::default()
    };
    let mut t = HostTable::new(cfg);
    t.upsert(&host("iso", 4, 4096, 20)).unwrap();
    t.upsert(&host("gen", 4, 4096, 20)).unwrap();
    let img = |id: &str| Request {
        image_id: id.into(),
        ..req(1, 1, 1)
    };
    assert_eq!(
        passing(&t, Filter::IsolatedHosts, &img("img-iso")),
        vec!["iso"]
    );
    assert_eq!(
        passing(&t, Filter::IsolatedHosts, &img("other")),
        vec!["gen"]
    );
    assert_eq!(passing(&t, Filter::IsolatedHosts, &img("")), vec!["gen"]);
}

fn weigh_only(w: Weigher, mult: f64, hosts: Vec<HostSpec>, r: &Request) -> Vec<(String, f64)> {
    let cfg = Config {
        weighers: vec![(w, mult)],
        seed: Some(1),
        ..Config::default()
    };
    let mut t = HostTable::new(cfg);
    let names: Vec<String> = hosts.iter().map(|h| h.name.clone()).collect();
    for h in &hosts {
        t.upsert(h).unwrap();
    }
    t.weigh_hosts(&names, r)
}

#[test]
fn ram_weigher_normalises_free_ram() {
    let ws = weigh_only(
        Weigher::Ram,
        1.0,
        vec![
            host("a", 4, 1024, 20),
            host("b", 4, 2048, 20),
            host("c", 4, 3072, 20),
        ],
        &req(1, 1, 1),
    );
    // Nova 22+ (bug 1870096): minval 0, so value / max
    assert_eq!(
        ws,
        vec![
            ("a".into(), 1.0 / 3.0),
            ("b".into(), 2.0 / 3.0),
            ("c".into(), 1.0)
        ]
    );
    // an overcommitted host (negative free RAM) is clamped at 0
    let mut over = host("o", 4, 1024, 20);
    over.reserved_memory_mb = 2048;
    let ws = weigh_only(
        Weigher::Ram,
        1.0,
        vec![over, host("b", 4, 2048, 20)],
        &req(1, 1, 1),
    );
    assert_eq!(ws, vec![("o".into(), 0.0), ("b".into(), 1.0)]);
}

#[test]
fn a_single_candidate_is_not_weighed() {
    let ws = weigh_only(
        Weigher::Ram,
        1.0,
        vec![host("a", 4, 1024, 20)],
        &req(1, 1, 1),
    );
    assert_eq!(ws, vec![("a".into(), 0.0)]);
}

#[test]
fn aggregate_multipliers_override_per_host_least_value_wins() {
    let agg = |name: &str, v: &str| {
        (
            name.to_string(),
            vec![("ram_weight_multiplier".to_string(), v.to_string())],
        )
    };
    let mut a = host("a", 4, 2048, 20);
    a.aggregates = vec![agg("x", "3.0"), agg("y", "2.0")];
    let mut b = host("b", 4, 2048, 20);
    b.aggregates = vec![agg("x", "3.0"), agg("z", "lots")]; // one value not a number: configured
    let c = host("c", 4, 1024, 20);
    let ws = weigh_only(Weigher::Ram, 1.0, vec![a, b, c], &req(1, 1, 1));
    assert_eq!(
        ws,
        vec![("a".into(), 2.0), ("b".into(), 1.0), ("c".into(), 0.5)]
    );
}

#[test]
fn cpu_and_disk_weighers() {
    let ws = weigh_only(
        Weigher::Cpu,
        2.0,
        vec![host("a", 2, 1, 1), host("b", 4, 1, 1)],
        &req(1, 1, 1),
    );
    assert_eq!(ws[1].1, 2.0);
    let ws = weigh_only(
        Weigher::Disk,
        1.0,
        vec![host("a", 2, 1, 10), host("b", 4, 1, 30)],
        &req(1, 1, 1),
    );
    assert_eq!(ws, vec![("a".into(), 1.0 / 3.0), ("b".into(), 1.0)]);
}

#[test]
fn io_ops_num_instances_build_failure_hypervisor_weighers() {
    let mut a = host("a", 4, 1024, 20);
    a.io_ops = 4;
    a.num_instances = 10;
    a.failed_builds = 3;
    a.hypervisor_version = 7_000_000;
    let mut b = host("b", 4, 1024, 20);
    b.hypervisor_version = 6_000_000;
    let hs = || vec![a.clone(), b.clone()];
    let r = req(1, 1, 1);
    assert_eq!(
        weigh_only(Weigher::IoOps, -1.0, hs(), &r),
        vec![("a".into(), -1.0), ("b".into(), 0.0)]
    );
    assert_eq!(
        weigh_only(Weigher::NumInstances, 1.0, hs(), &r),
        vec![("a".into(), 1.0), ("b".into(), 0.0)]
    );
    assert_eq!(
        weigh_only(Weigher::BuildFailure, 1_000_000.0, hs(), &r),
        vec![("a".into(), -1_000_000.0), ("b".into(), 0.0)] // as Nova reports it: negated multiplier
    );
    assert_eq!(
        weigh_only(Weigher::HypervisorVersion, 1.0, hs(), &r),
        vec![("a".into(), 1.0), ("b".into(), 0.0)]
    );
}

#[test]
fn soft_affinity_weighers() {
    let hs = || vec![host("a", 4, 1024, 20), host("b", 4, 1024, 20)];
    let mut r = req(1, 1, 1);
    r.group_hosts = vec!["b".into(), "b".into()];
    r.group_policy = "soft-affinity".into();
    assert_eq!(weigh_only(Weigher::SoftAffinity, 1.0, hs(), &r)[1].1, 1.0);
    assert_eq!(
        weigh_only(Weigher::SoftAntiAffinity, 1.0, hs(), &r)[1].1,
        0.0
    );
    r.group_policy = "soft-anti-affinity".into();
    assert_eq!(
        weigh_only(Weigher::SoftAntiAffinity, 1.0, hs(), &r),
        vec![("a".into(), 1.0), ("b".into(), 0.0)]
    );
}

#[test]
fn equal_weights_keep_table_order_and_alternates() {
    let cfg = Config {
        max_attempts: 3,
        seed: Some(1),
        ..Config::default()
    };
    let mut t = HostTable::new(cfg);
    for n in ["a", "b", "c", "d"] {
        t.upsert(&host(n, 4, 4096, 20)).unwrap();
    }
    let out = t.plan(&req(1, 1, 1)).0;
    assert_eq!(out.selections[0].host, "a");
    assert_eq!(out.selections[0].alternate_hosts, vec!["b", "c"]);
}

#[test]
fn top_k_matches_full_exact_sort_on_large_tables() {
    let mut t = HostTable::new(Config {
        seed: Some(1),
        ..Config::default()
    });
    let mut x: u64 = 7;
    for i in 0..3000 {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let mut h = host(
            &format!("h{i}"),
            [8, 16, 32][(x >> 33) as usize % 3],
            [8192, 16384][(x >> 40) as usize % 2],
            100,
        );
        h.io_ops = (x >> 50) as i64 % 3;
        h.hypervisor_version = [6_000_000, 7_000_000][(x >> 45) as usize % 2];
        t.upsert(&h).unwrap();
        if x.is_multiple_of(3) {
            t.claim(
                &format!("c{i}"),
                &format!("h{i}"),
                2,
                (x >> 20) as i64 % 4000,
                10,
            )
            .unwrap();
        }
    }
    let r = req(1, 512, 1);
    let names: Vec<String> = t.host_names().map(|s| s.to_string()).collect();
    let mut all = t.weigh_hosts(&names, &r);
    let idx: HashMap<String, usize> = names
        .iter()
        .cloned()
        .enumerate()
        .map(|(i, n)| (n, i))
        .collect();
    all.sort_by(|a, b| {
        b.1.partial_cmp(&a.1)
            .unwrap()
            .then(idx[&a.0].cmp(&idx[&b.0]))
    });
    let out = t.plan(&r).0;
    let top: Vec<String> = out
        .explanation
        .top_hosts
        .iter()
        .map(|h| h.host.clone())
        .collect();
    let want: Vec<String> = all.iter().take(top.len()).map(|(n, _)| n.clone()).collect();
    assert_eq!(top, want);
}

#[test]
fn stale_generation_is_ignored_and_claims_survive() {
    let mut t = table_with(&[Filter::Ram], vec![]);
    let mut a = host("a", 4, 4096, 20);
    a.generation = 5;
    assert!(t.upsert(&a).unwrap());
    t.claim("x", "a", 1, 1000, 1).unwrap();
    a.generation = 4;
    a.memory_mb = 1;
    assert!(!t.upsert(&a).unwrap());
    a.generation = 6;
    a.memory_mb = 8192;
    assert!(t.upsert(&a).unwrap());
    let v = t.view(0);
    assert_eq!((v.memory_mb, v.memory_mb_used), (8192, 1000));
    assert!(t.remove("a"));
    assert!(!t.release("x"));
    assert!(t.is_empty());
}

#[test]
fn memory_of_100k_hosts_under_64_mib() {
    let mut t = HostTable::new(Config::default());
    for i in 0..100_000 {
        let mut h = host(&format!("compute-{i:06}.example.org"), 64, 262_144, 2000);
        h.availability_zone = format!("az{}", i % 3);
        h.aggregates = vec![(
            format!("rack{}", i % 50),
            vec![("ssd".into(), "true".into())],
        )];
        t.upsert(&h).unwrap();
    }
    assert!(t.memory_bytes() < 64 << 20, "{}", t.memory_bytes());
}

#[test]
fn amounts_that_would_overflow_are_rejected_not_wrapped() {
    let mut t = table_with(&[Filter::Disk], vec![host("a", 4, 4096, MAX_AMOUNT)]);
    // root + ephemeral = 2^63 would wrap to a negative disk request that every host passes
    let mut r = req(1, 1, 1 << 62);
    r.ephemeral_gb = 1 << 62;
    let err = t.select(&r).unwrap_err();
    assert!(err.contains("root_gb must be between 0 and"), "{err}");
    r.root_gb = MAX_AMOUNT;
    r.ephemeral_gb = MAX_AMOUNT;
    let err = t.select(&r).unwrap_err();
    assert!(
        err.contains("root_gb + ephemeral_gb + swap_mb / 1024 must be at most"),
        "{err}"
    );
    // negative sizes
    r = req(1, 1, 1);
    r.swap_mb = -1;
    assert!(t.select(&r).unwrap_err().contains("swap_mb"));
    r = req(1, 1, 1);
    r.ephemeral_gb = -5;
    assert!(t.select(&r).unwrap_err().contains("ephemeral_gb"));
    assert_eq!(t.num_claims(), 0);
    assert_eq!(t.view(0).disk_gb_used, 0);
    // host reports and restored claims are checked alike, and change nothing when rejected
    let mut big = host("b", 4, 4096, 20);
    big.memory_mb = MAX_AMOUNT + 1;
    assert!(t.upsert(&big).unwrap_err().contains("memory_mb"));
    big.memory_mb = 4096;
    big.ram_allocation_ratio = f64::NAN;
    assert!(t.upsert(&big).unwrap_err().contains("ram_allocation_ratio"));
    assert_eq!(t.len(), 1);
    assert!(t.claim("x", "a", -1, 1, 1).is_err());
    // summed usage: past MAX_USED is an error, the table unchanged
    for k in 0..1024 {
        t.claim(&format!("c{k}"), "a", 1, MAX_AMOUNT, 0).unwrap();
    }
    let err = t.claim("last", "a", 1, MAX_AMOUNT, 0).unwrap_err();
    assert!(err.contains("would take its usage past"), "{err}");
    assert_eq!(t.view(0).memory_mb_used, MAX_USED);
    assert_eq!(t.num_claims(), 1024);
    // a select that would push usage past the bound claims nothing
    let mut t = table_with(&[], vec![host("a", 4, 4096, 20)]);
    for k in 0..1024 {
        t.claim(&format!("c{k}"), "a", 0, 0, MAX_AMOUNT).unwrap();
    }
    let r = req(0, 0, 1);
    assert!(t.select(&r).unwrap_err().contains("disk_gb"));
    assert_eq!(t.num_claims(), 1024);
}

#[test]
fn same_and_different_host_hints_name_instances_not_hosts() {
    let hosts = vec![
        host("a", 4, 8192, 20),
        host("b", 4, 8192, 20),
        host("c", 4, 8192, 20),
    ];
    let mut t = table_with(
        &[Filter::Ram, Filter::SameHost, Filter::DifferentHost],
        hosts,
    );
    t.claim("vm1", "b", 1, 4096, 1).unwrap();
    let hinted = |same: &[&str], diff: &[&str]| Request {
        same_host: same.iter().map(|s| s.to_string()).collect(),
        different_host: diff.iter().map(|s| s.to_string()).collect(),
        ..req(1, 1024, 1)
    };
    // without a hint the RAM weigher avoids b (it holds vm1's 4 GB)
    assert_ne!(chosen(&t, &hinted(&[], &[])), vec!["b"]);
    assert_eq!(chosen(&t, &hinted(&["vm1"], &[])), vec!["b"]);
    assert_eq!(chosen(&t, &hinted(&["nope", "vm1"], &[])), vec!["b"]);
    let away = chosen(&t, &hinted(&[], &["vm1"]));
    assert_eq!(away.len(), 1);
    assert_ne!(away, vec!["b"]);
    // a host name is not an instance: it matches no host
    let out = t.plan(&hinted(&["b"], &[])).0;
    assert!(!out.ok);
    assert!(out
        .explanation
        .summary
        .contains("SameHostFilter rejected 3"));
    assert_eq!(t.plan(&hinted(&[], &["b"])).0.explanation.hosts_passed, 3);
    // a batch with same_host stays on the instance's host
    let mut r = hinted(&["vm1"], &[]);
    r.instance_ids = vec!["x".into(), "y".into()];
    assert_eq!(chosen(&t, &r), vec!["b", "b"]);
}

#[test]
fn traits_filter_required_and_forbidden() {
    let mut a = host("a", 4, 1024, 20);
    a.traits = vec!["HW_CPU_X86_AVX2".into(), "CUSTOM_GPU".into()];
    let mut b = host("b", 4, 1024, 20);
    b.traits = vec!["HW_CPU_X86_AVX2".into()];
    let t = table_with(&[Filter::Traits], vec![a, b, host("c", 4, 1024, 20)]);
    let with = |specs: &[(&str, &str)], image: &[(&str, &str)]| Request {
        flavor_extra_specs: specs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        image_properties: image
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..req(1, 1, 1)
    };
    let avx2 = with(&[("trait:HW_CPU_X86_AVX2", "required")], &[]);
    assert_eq!(passing(&t, Filter::Traits, &avx2), vec!["a", "b"]);
    let no_gpu = with(
        &[
            ("trait:HW_CPU_X86_AVX2", "required"),
            ("trait:CUSTOM_GPU", "forbidden"),
        ],
        &[],
    );
    assert_eq!(passing(&t, Filter::Traits, &no_gpu), vec!["b"]);
    assert_eq!(
        passing(
            &t,
            Filter::Traits,
            &with(&[], &[("trait:CUSTOM_GPU", "required")])
        ),
        vec!["a"]
    );
    assert!(passing(
        &t,
        Filter::Traits,
        &with(&[("trait:CUSTOM_NOWHERE", "required")], &[])
    )
    .is_empty());
    let out = t.plan(&avx2).0;
    let rej = out
        .explanation
        .rejections
        .iter()
        .find(|r| r.filter == "TraitsFilter")
        .unwrap();
    assert_eq!(rej.sample_reasons, vec!["c: lacks trait HW_CPU_X86_AVX2"]);
}

#[test]
fn anti_affinity_max_server_per_host() {
    let t = table_with(
        &[Filter::ServerGroupAntiAffinity],
        vec![host("a", 4, 1024, 20), host("b", 4, 1024, 20)],
    );
    let mut r = req(1, 1, 1);
    r.group_policy = "anti-affinity".into();
    r.group_hosts = vec!["a".into(), "a".into(), "b".into()];
    assert!(passing(&t, Filter::ServerGroupAntiAffinity, &r).is_empty());
    r.group_max_server_per_host = 2;
    assert_eq!(passing(&t, Filter::ServerGroupAntiAffinity, &r), vec!["b"]);
}

#[test]
fn image_properties_supported_instances_and_maxphysaddr() {
    let mut a = host("a", 4, 1024, 20);
    a.supported_instances = vec![
        ("x86_64".into(), "qemu".into(), "hvm".into()),
        ("i686".into(), "kvm".into(), "hvm".into()),
    ];
    a.cpu_info = r#"{"maxphysaddr": {"mode": "passthrough", "bits": 46}}"#.into();
    let mut b = host("b", 4, 1024, 20);
    b.cpu_arch = "x86_64".into();
    b.hypervisor_type = "QEMU".into();
    let t = table_with(&[Filter::ImageProperties], vec![a, b]);
    let with = |props: &[(&str, &str)]| Request {
        image_properties: props
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..req(1, 1, 1)
    };
    // any one entry must hold every requested property
    assert_eq!(
        passing(
            &t,
            Filter::ImageProperties,
            &with(&[("hw_architecture", "i686")])
        ),
        vec!["a"]
    );
    let i686_qemu = with(&[("hw_architecture", "i686"), ("img_hv_type", "qemu")]);
    assert!(passing(&t, Filter::ImageProperties, &i686_qemu).is_empty());
    let bits = |n: &str| with(&[("hw_architecture", "x86_64"), ("hw_maxphysaddr_bits", n)]);
    assert_eq!(
        passing(&t, Filter::ImageProperties, &bits("46")),
        vec!["a", "b"]
    );
    assert_eq!(passing(&t, Filter::ImageProperties, &bits("48")), vec!["b"]); // b reports no bits
}
