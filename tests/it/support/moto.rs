//! A real S3-compatible server for tests: `moto_server` on a free loopback
//! port, killed when dropped.

use std::process::Stdio;
use std::time::Duration;

use aws_sdk_s3::config::Credentials;
use switchboard::storage::{S3Settings, S3Store};

use super::wait_until;

pub struct Moto {
    pub endpoint: String,
    _child: tokio::process::Child,
}

impl Moto {
    pub async fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = tokio::process::Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("moto_server is installed (tests/run installs it: pip install \"moto[server]\")");
        let endpoint = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::new();
        wait_until(Duration::from_secs(30), "moto_server to answer", || {
            let probe = client.get(&endpoint).send();
            async move { probe.await.is_ok() }
        })
        .await;
        Self { endpoint, _child: child }
    }

    /// A store on a fresh bucket, encrypted as in production.
    pub async fn store(&self, bucket: &str) -> S3Store {
        let settings = S3Settings {
            bucket: bucket.to_owned(),
            region: "ap-south-1".to_owned(),
            endpoint: Some(self.endpoint.clone()),
            encryption: Some(aws_sdk_s3::types::ServerSideEncryption::Aes256),
            kms_key_id: None,
            url_ttl: Duration::from_secs(900),
        };
        let credentials = Credentials::new("testing", "testing", None, None, "static");
        let store = S3Store::connect(settings, Some(credentials)).await;
        let location = aws_sdk_s3::types::CreateBucketConfiguration::builder()
            .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::ApSouth1)
            .build();
        store.client().create_bucket().bucket(bucket).create_bucket_configuration(location).send().await.unwrap();
        store
    }
}
