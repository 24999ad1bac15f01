//! The after-call chain's wiring from the environment: its ports (recording
//! storage, downloads, OpenAI, CRM) and its switches.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `AUTO_TRANSCRIBE` | `true` | a stored recording enqueues `transcribe` |
//! | `AUTO_ANALYZE` | `true` | a transcript enqueues `analyze` |
//! | `AUTO_CREATE_LEADS` | `true` | an insight enqueues `create-lead` |
//! | `MIN_TRANSCRIBE_SECONDS` | 30 | shorter calls are not transcribed (the transcript row says why) |
//! | `HOT_LEAD_SCORE` | 75 | a lead whose newest score is at least this is hot |
//!
//! The ports' own variables are in `storage`, `recording_fetch`, `ai` and `crm`.

use std::sync::Arc;

use switchboard_jobs::pipeline::PipelineSettings;
use switchboard_jobs::ports::{Analyzer, Ports, Transcriber};

use crate::ai::OpenAi;
use crate::config::parsed;
use crate::crm::CrmWebhook;
use crate::recording_fetch::RecordingDownloader;
use crate::storage::RecordingStorage;

pub fn settings_from_env() -> anyhow::Result<PipelineSettings> {
    let defaults = PipelineSettings::default();
    let settings = PipelineSettings {
        auto_transcribe: parsed("AUTO_TRANSCRIBE", defaults.auto_transcribe)?,
        auto_analyze: parsed("AUTO_ANALYZE", defaults.auto_analyze)?,
        auto_create_leads: parsed("AUTO_CREATE_LEADS", defaults.auto_create_leads)?,
        min_transcribe_seconds: parsed("MIN_TRANSCRIBE_SECONDS", defaults.min_transcribe_seconds)?,
        hot_lead_score: parsed("HOT_LEAD_SCORE", defaults.hot_lead_score)?,
    };
    if !(0..=100).contains(&settings.hot_lead_score) {
        anyhow::bail!("HOT_LEAD_SCORE must be between 0 and 100");
    }
    Ok(settings)
}

/// `ports` with the after-call ports and settings filled in from the environment.
pub async fn with_after_call_ports(ports: Ports) -> anyhow::Result<Ports> {
    let openai = OpenAi::from_env()?.map(Arc::new);
    Ok(Ports {
        recordings: Some(Arc::new(RecordingStorage::from_env().await?)),
        recording_fetcher: Some(Arc::new(RecordingDownloader::from_env()?)),
        transcriber: openai.clone().map(|ai| ai as Arc<dyn Transcriber>),
        analyzer: openai.map(|ai| ai as Arc<dyn Analyzer>),
        crm: CrmWebhook::from_env()?.map(|crm| Arc::new(crm) as _),
        pipeline: settings_from_env()?,
        ..ports
    })
}
