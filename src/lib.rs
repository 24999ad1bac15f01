//! Switchboard: how it meets the world (web, CLI, providers, storage, AI)
//! around the job kinds in `switchboard-jobs`.

pub mod after_call;
pub mod ai;
pub mod bench;
pub mod cli;
pub mod config;
pub mod crm;
pub mod db;
pub mod demo;
pub mod ip_block;
pub mod ivr;
pub mod log_metrics;
pub mod providers;
pub mod recording_fetch;
pub mod retry_after;
pub mod shutdown;
pub mod sim;
pub mod simulate;
pub mod storage;
pub mod telemetry;
pub mod web;
pub mod worker;
