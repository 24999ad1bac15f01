//! Recording storage: the local directory and S3 (a real moto server) pass the same test.

use sha2::{Digest, Sha256};
use switchboard::storage::{LocalDir, RecordingStorage, Retrieval};
use switchboard_jobs::ports::RecordingStore;
use tokio::io::AsyncReadExt;

use crate::support::moto::Moto;
use crate::support::put_bytes;

fn recording_bytes() -> Vec<u8> {
    (0..300_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect()
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Put (twice: the second overwrites), get back, and fetch as a client would.
async fn stores_and_serves_identical_bytes(storage: &RecordingStorage) {
    let body = recording_bytes();
    let key = "twilio/CA0001/RE0001.mp3";
    put_bytes(storage, key, &[1, 2, 3]).await.unwrap();
    put_bytes(storage, key, &body).await.unwrap();

    assert_eq!(sha256(&storage.get(key).await.unwrap()), sha256(&body));
    let served = match storage.retrieve(key).await.unwrap() {
        Retrieval::Redirect(url) => {
            assert!(storage.presigned_url(key).await.unwrap().is_some());
            let response = reqwest::get(&url).await.unwrap();
            assert_eq!(response.status(), 200, "presigned GET {url}");
            response.bytes().await.unwrap().to_vec()
        }
        Retrieval::File(mut file, len) => {
            assert_eq!(len, body.len() as u64);
            let mut bytes = Vec::new();
            file.read_to_end(&mut bytes).await.unwrap();
            bytes
        }
    };
    assert_eq!(served.len(), body.len());
    assert_eq!(sha256(&served), sha256(&body));
}

#[tokio::test]
async fn local_directory_stores_and_serves_identical_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let storage = RecordingStorage::Local(LocalDir::new(dir.path()));
    stores_and_serves_identical_bytes(&storage).await;
    assert_eq!(storage.presigned_url("twilio/CA0001/RE0001.mp3").await.unwrap(), None);
}

#[tokio::test]
async fn s3_stores_and_serves_identical_bytes() {
    let moto = Moto::start().await;
    let store = moto.store("recordings").await;
    let client = store.client().clone();
    stores_and_serves_identical_bytes(&RecordingStorage::S3(store)).await;
    let head = client.head_object().bucket("recordings").key("twilio/CA0001/RE0001.mp3").send().await.unwrap();
    assert_eq!(head.server_side_encryption, Some(aws_sdk_s3::types::ServerSideEncryption::Aes256));
    assert_eq!(head.content_type.as_deref(), Some("audio/mpeg"));
}

#[tokio::test]
async fn local_keys_cannot_leave_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    let storage = RecordingStorage::Local(LocalDir::new(dir.path().join("inner")));
    assert!(put_bytes(&storage, "../escape.mp3", &[1]).await.is_err());
    assert!(storage.get("/etc/passwd").await.is_err());
}
