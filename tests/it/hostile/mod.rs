//! Hostile input and overload (issue 10): what an outsider, or a provider
//! having a bad day, can send, and what must hold when they do.

mod api;
mod api_bounds;
mod crm_push;
mod exotel_gate;
mod overload;
mod parsers;
mod prompt_injection;
mod recording_urls;
mod retry_after;
mod settings;
mod sids_by_provider;
mod webhooks;
