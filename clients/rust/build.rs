//! Generates the ApiService client from the repository's protos/ at build time (nothing checked
//! in, so it cannot go stale). protoc is `$PROTOC` when set, else the one protoc-bin-vendored ships.
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../protos");
    if std::env::var_os("PROTOC").is_none() {
        // SAFETY: build scripts are single-threaded; tonic-prost-build reads PROTOC below.
        unsafe { std::env::set_var("PROTOC", protoc_bin_vendored::protoc_bin_path()?) };
    }
    let include = protoc_bin_vendored::include_path()?;
    println!("cargo:rerun-if-changed={}", protos.display());
    tonic_prost_build::configure()
        .build_server(false)
        .compile_protos(&[protos.join("drover/v1/api.proto")], &[protos, include])?;
    Ok(())
}
