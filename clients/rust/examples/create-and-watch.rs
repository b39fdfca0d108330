//! create-and-watch: create one server and print every state change and notification until it
//! settles; when no host can take it, print the scheduler's explanation.
//!
//!     cargo run --example create-and-watch -- --addr 127.0.0.1:8774 --image drover-tiny
use std::collections::HashMap;
use std::process::ExitCode;

use drover_client::{Client, Error, Options, explain_no_valid_host, no_valid_host, pb};

fn args() -> HashMap<String, String> {
    let mut args: HashMap<String, String> = [
        ("addr", "127.0.0.1:8774"),
        ("name", "demo"),
        ("flavor", "m1.tiny"),
        ("image", "drover-tiny"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    args.insert(
        "token".into(),
        std::env::var("DROVER_TOKEN").unwrap_or_default(),
    );
    let mut it = std::env::args().skip(1);
    while let (Some(flag), Some(value)) = (it.next(), it.next()) {
        args.insert(flag.trim_start_matches("--").to_owned(), value);
    }
    args
}

async fn run(a: &HashMap<String, String>) -> Result<(), Error> {
    let client = Client::connect(&a["addr"], Options::default().token(a["token"].clone())).await?;
    let created = client
        .create_server(pb::CreateServerRequest {
            name: a["name"].clone(),
            flavor_ref: a["flavor"].clone(),
            image_ref: a["image"].clone(),
            ..Default::default()
        })
        .await?;
    let mut last = created.server.unwrap_or_default();
    println!("created {} (revision {})", last.id, last.revision);
    let mut watch = client.watch_server(&last.id, last.revision);
    while let Some(event) = watch.next().await {
        let event = event?;
        last = event.server.unwrap_or_default();
        println!(
            "revision {}: {:?} / {:?}",
            last.revision,
            last.status(),
            last.task_state()
        );
        if let Some(n) = event.notification {
            println!("  notification {} {:?}", n.event_type, n.payload);
        }
    }
    println!("final: {:?} on {:?}", last.status(), last.host);
    if let Some(why) = no_valid_host(&last) {
        println!("{}", explain_no_valid_host(why));
    }
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(&args()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            for v in &e.field_violations {
                eprintln!("  {}: {}", v.field, v.description);
            }
            ExitCode::FAILURE
        }
    }
}
