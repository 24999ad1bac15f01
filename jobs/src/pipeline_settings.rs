//! The after-call chain's switches and thresholds, read by the handlers
//! through their ports and by the chain itself.

/// Switches and thresholds of the chain (`AUTO_*`, `MIN_TRANSCRIBE_SECONDS`, `HOT_LEAD_SCORE`).
#[derive(Debug, Clone, PartialEq)]
pub struct PipelineSettings {
    pub auto_transcribe: bool,
    pub auto_analyze: bool,
    pub auto_create_leads: bool,
    /// Calls shorter than this are not transcribed (the transcript says why).
    pub min_transcribe_seconds: u32,
    /// A lead whose newest score reaches this is hot.
    pub hot_lead_score: i32,
}

impl Default for PipelineSettings {
    fn default() -> Self {
        Self {
            auto_transcribe: true,
            auto_analyze: true,
            auto_create_leads: true,
            min_transcribe_seconds: 30,
            hot_lead_score: 75,
        }
    }
}
