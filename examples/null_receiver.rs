//! The ceiling for end-to-end benchmarks: an axum server that only reads each POST body to the
//! end and answers `200 OK`, on the same runtime flavour as the exporter (tokio multi-thread,
//! HTTP/1.1 keep-alive). Nothing is parsed, journaled or counted.
//!
//! `cargo run --release --example null_receiver -- [ADDR]` (default `127.0.0.1:19479`).
//! `scripts/bench.sh` drives it with the same wrk load as the exporter.

use axum::body::Bytes;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use axum::Router;

async fn receive(body: Bytes) -> (StatusCode, &'static str) {
    std::hint::black_box(body.len());
    (StatusCode::OK, "OK\n")
}

fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:19479".to_owned());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let app = Router::new()
            .route("/cdr", post(receive))
            .route("/", post(receive))
            .route("/-/ready", get(|| async { "Ready\n" }));
        let listener = tokio::net::TcpListener::bind(&addr).await?;
        eprintln!("null receiver listening on {}", listener.local_addr()?);
        // As the exporter's accept loop does.
        let listener = listener.tap_io(|s| {
            let _ = s.set_nodelay(true);
        });
        axum::serve(listener, app).await
    })
}
