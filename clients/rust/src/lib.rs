//! A small client for drover's ApiService: connect with a bearer token and TLS, create a server
//! and watch it to a final state (resuming from the last revision seen after a disconnect), and
//! errors decoded with their google.rpc details.
//!
//! ```no_run
//! # async fn demo() -> Result<(), drover_client::Error> {
//! use drover_client::{pb, Client, Options};
//! let client = Client::connect("127.0.0.1:8774", Options::default().token("…")).await?;
//! let created = client.create_server(pb::CreateServerRequest {
//!     name: "demo".into(), flavor_ref: "m1.tiny".into(), image_ref: "drover-tiny".into(),
//!     ..Default::default() }).await?;
//! let server = created.server.unwrap();
//! let mut watch = client.watch_server(&server.id, server.revision);
//! while let Some(event) = watch.next().await { println!("{:?}", event?.server); }
//! # Ok(()) }
//! ```

mod client;
mod error;
mod watch;

/// The generated messages and the ApiService client (package drover.v1).
pub mod pb {
    tonic::include_proto!("drover.v1");
}

pub use client::{Client, Options};
pub use error::{Error, explain_no_valid_host, no_valid_host};
pub use watch::{ServerWatch, is_final};
