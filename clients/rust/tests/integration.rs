//! The Rust client against a real mesh: four service processes on loopback, the fake driver.
mod mesh;

use std::process::Command;

use drover_client::pb::{self, ServerStatus, TaskState, VmState, WatchServerResponse};
use drover_client::{Client, Options, explain_no_valid_host, is_final, no_valid_host};
use mesh::mesh;
use tonic::Code;

/// One test at a time: the disconnect test cuts every connection to the API.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn connect() -> Client {
    let m = tokio::task::spawn_blocking(mesh).await.unwrap();
    Client::connect(&m.api, Options::default().token(m.token()))
        .await
        .unwrap()
}

async fn create(c: &Client, name: &str, flavor: &str) -> pb::Server {
    let req = pb::CreateServerRequest {
        name: name.into(),
        flavor_ref: flavor.into(),
        image_ref: mesh().image.clone(),
        ..Default::default()
    };
    c.create_server(req).await.unwrap().server.unwrap()
}

/// Every event until the server settles, and how many times the watch had to reopen its stream.
async fn watch_all(
    c: &Client,
    s: &pb::Server,
    mut on_event: impl FnMut(),
) -> (Vec<WatchServerResponse>, u32) {
    let mut watch = c.watch_server(&s.id, s.revision);
    let mut events = Vec::new();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    while let Some(ev) = tokio::time::timeout_at(deadline, watch.next())
        .await
        .expect("watch timed out")
    {
        events.push(ev.unwrap());
        on_event();
    }
    (events, watch.resumes())
}

fn last(events: &[WatchServerResponse]) -> &pb::Server {
    events
        .last()
        .and_then(|e| e.server.as_ref())
        .expect("no events")
}

fn task_states(events: &[WatchServerResponse]) -> Vec<TaskState> {
    let mut seen: Vec<TaskState> = Vec::new();
    for ev in events {
        let ts = ev.server.as_ref().unwrap().task_state();
        if seen.last() != Some(&ts) {
            seen.push(ts);
        }
    }
    seen
}

fn notifications(events: &[WatchServerResponse]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| e.notification.as_ref().map(|n| n.event_type.clone()))
        .collect()
}

const BUILD_STEPS: [TaskState; 5] = [
    TaskState::Scheduling,
    TaskState::Networking,
    TaskState::BlockDeviceMapping,
    TaskState::Spawning,
    TaskState::Unspecified,
];

#[tokio::test]
async fn create_to_active_sees_every_step() {
    let _one = SERIAL.lock().await;
    let c = connect().await;
    let (events, _) = watch_all(&c, &create(&c, "rust-active", &mesh().flavor).await, || {}).await;
    let fin = last(&events);
    assert_eq!(fin.status(), ServerStatus::Active);
    assert!(is_final(fin));
    assert_eq!(task_states(&events), BUILD_STEPS);
    let n = notifications(&events);
    assert!(
        n.contains(&"instance.create.start".into()) && n.contains(&"instance.create.end".into()),
        "{n:?}"
    );
    assert!(no_valid_host(fin).is_none());
}

#[tokio::test]
async fn no_valid_host_is_explained() {
    let _one = SERIAL.lock().await;
    let c = connect().await;
    let (events, _) = watch_all(
        &c,
        &create(&c, "rust-novalidhost", &mesh().huge_flavor).await,
        || {},
    )
    .await;
    let fin = last(&events);
    assert_eq!(fin.vm_state(), VmState::Error);
    let why = no_valid_host(fin).expect("no explanation on the ERROR server");
    assert!(why.summary.contains("no valid host"), "{}", why.summary);
    let ram = why
        .rejections
        .iter()
        .find(|r| r.filter == "RamFilter")
        .expect("RamFilter rejected nothing");
    assert_eq!(ram.rejected, why.hosts_total);
    assert!(explain_no_valid_host(why).contains("RamFilter rejected"));
    assert!(notifications(&events).contains(&"instance.create.error".into()));
}

#[tokio::test]
async fn invalid_argument_field_violations_are_decoded() {
    let _one = SERIAL.lock().await;
    let c = connect().await;
    let req = pb::CreateServerRequest {
        name: " ".into(),
        flavor_ref: mesh().flavor.clone(),
        image_ref: mesh().image.clone(),
        min_count: -1,
        ..Default::default()
    };
    let err = c
        .create_server(req)
        .await
        .expect_err("an invalid request was accepted");
    assert_eq!(err.code, Code::InvalidArgument);
    let fields: Vec<&str> = err
        .field_violations
        .iter()
        .map(|v| v.field.as_str())
        .collect();
    assert!(
        fields.contains(&"name") && fields.contains(&"min_count"),
        "{fields:?}"
    );
}

#[tokio::test]
async fn not_found_names_the_resource() {
    let _one = SERIAL.lock().await;
    let c = connect().await;
    let id = "00000000-0000-0000-0000-000000000000";
    let err = c
        .get_server(id)
        .await
        .expect_err("found a server that does not exist");
    assert_eq!(err.code, Code::NotFound);
    assert_eq!(err.resource.map(|r| r.resource_name), Some(id.to_owned()));
}

#[tokio::test]
async fn watch_resumes_from_last_revision_after_a_disconnect() {
    let _one = SERIAL.lock().await;
    let c = connect().await;
    let server = create(&c, "rust-resume", &mesh().flavor).await;
    let mut cut = false;
    let (events, resumes) = watch_all(&c, &server, || {
        if !cut {
            // after the first step, drop the connection under the open stream
            cut = true;
            mesh().cut();
        }
    })
    .await;
    assert!(cut);
    assert!(resumes >= 1, "the cut did not break the watch's stream");
    assert_eq!(last(&events).status(), ServerStatus::Active);
    assert_eq!(task_states(&events), BUILD_STEPS);
    // Nothing replayed twice: a resume starts after the last revision seen.
    let keys: Vec<(i64, String)> = events
        .iter()
        .map(|e| {
            (
                e.server.as_ref().unwrap().revision,
                e.notification
                    .as_ref()
                    .map(|n| n.event_type.clone())
                    .unwrap_or_default(),
            )
        })
        .collect();
    let unique: std::collections::HashSet<_> = keys.iter().collect();
    assert_eq!(
        unique.len(),
        keys.len(),
        "an event was delivered twice: {keys:?}"
    );
    let revisions: Vec<i64> = events
        .iter()
        .map(|e| e.server.as_ref().unwrap().revision)
        .collect();
    assert!(
        revisions.is_sorted(),
        "revisions went back after the reconnect: {revisions:?}"
    );
    assert!(notifications(&events).contains(&"instance.create.end".into()));
}

#[tokio::test]
async fn bad_token_is_refused() {
    let _one = SERIAL.lock().await;
    let m = tokio::task::spawn_blocking(mesh).await.unwrap();
    if m.token().is_empty() {
        eprintln!(
            "skipped: the API does not authenticate yet (no admin.token in the mesh's data dir)"
        );
        return;
    }
    let c = Client::connect(&m.api, Options::default().token("not-a-valid-token"))
        .await
        .unwrap();
    let err = c
        .get_server("00000000-0000-0000-0000-000000000000")
        .await
        .expect_err("a bad token was accepted");
    assert_eq!(err.code, Code::Unauthenticated);
}

#[tokio::test]
async fn create_and_watch_example() {
    let _one = SERIAL.lock().await;
    let m = tokio::task::spawn_blocking(mesh).await.unwrap();
    // cargo test builds the examples next to the test binaries' directory.
    let exe = std::env::current_exe().unwrap();
    let example = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples/create-and-watch");
    let run = |flavor: &str| {
        let out = Command::new(&example)
            .args([
                "--addr",
                &m.api,
                "--token",
                &m.token(),
                "--image",
                &m.image,
                "--flavor",
                flavor,
            ])
            .args(["--name", &format!("rust-example-{flavor}")])
            .output()
            .expect("run the example");
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
    };
    let ok = run(&m.flavor);
    assert!(
        ok.contains("Spawning")
            && ok.contains("instance.create.end")
            && ok.contains("final: Active"),
        "{ok}"
    );
    let none = run(&m.huge_flavor);
    assert!(
        none.contains("no valid host") && none.contains("RamFilter rejected"),
        "{none}"
    );
}
