//! `noop`: a job that does nothing (optionally after a pause), for checking a
//! deployment end to end and for the queue's own tests.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::queue::{Job, JobContext, JobError};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Noop {
    #[serde(default)]
    pub sleep_ms: u64,
}

impl Job for Noop {
    const KIND: &'static str = "noop";

    async fn run(self, _: JobContext) -> Result<(), JobError> {
        tokio::time::sleep(Duration::from_millis(self.sleep_ms)).await;
        Ok(())
    }
}
