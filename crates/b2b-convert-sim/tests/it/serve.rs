//! `serve`: the entry point behind `b2b-convert sim serve` prints its URLs and runs until
//! told to stop.

use b2b_convert_sim::{FaultPlan, ServeOptions, serve};

use super::client;

#[tokio::test]
async fn serve_prints_its_urls_and_stops_when_asked() {
    // Find a free port, then give it to serve (as an operator would with --port).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let dir = tempfile::tempdir().expect("temp dir");
    let options = ServeOptions {
        users: 50,
        seed: 9,
        port,
        tenant_file: None,
        faults: FaultPlan::parse("domains:503=1").expect("grammar"),
        throttling: true,
        credentials_dir: Some(dir.path().to_owned()),
        ..ServeOptions::default()
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = spawn_serve(options, stopped);
    let url = format!("http://127.0.0.1:{port}/_sim/tenant");
    let http = client();
    let mut tenant = None;
    for _ in 0..100 {
        if let Ok(response) = http.get(&url).send().await {
            tenant = Some(response.json::<serde_json::Value>().await.expect("json"));
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let tenant = tenant.expect("the server came up");
    assert_eq!(tenant["users"], 50);
    stop.send(()).expect("server still running");
    let output = server.await.expect("serve task");
    assert!(
        output.contains(&format!("Graph URL:  http://127.0.0.1:{port}")),
        "{output}"
    );
    assert!(
        output.contains(&format!("Login URL:  http://127.0.0.1:{port}/login")),
        "{output}"
    );
    assert!(output.contains(tenant["tenantId"].as_str().expect("tenant id")));
    assert!(output.contains("throwaway simulator credential"));
    assert!(output.contains("Stopping"));
    let key = std::fs::read_to_string(dir.path().join("sim-private-key.pem")).expect("key written");
    assert!(key.contains("PRIVATE KEY"));
    let certificate = std::fs::read_to_string(dir.path().join("sim-certificate.pem"))
        .expect("certificate written");
    assert!(certificate.contains("BEGIN CERTIFICATE"));
    assert!(
        http.get(&url).send().await.is_err(),
        "the port is closed after shutdown"
    );
}

/// Runs `serve` on its own thread (its output writer is not `Send`) and returns what it printed.
fn spawn_serve(
    options: ServeOptions,
    stopped: tokio::sync::oneshot::Receiver<()>,
) -> tokio::task::JoinHandle<String> {
    tokio::task::spawn_blocking(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let mut output = Vec::new();
        runtime
            .block_on(serve(options, &mut output, async move {
                let _ = stopped.await;
            }))
            .expect("serve succeeds");
        String::from_utf8(output).expect("utf-8")
    })
}
