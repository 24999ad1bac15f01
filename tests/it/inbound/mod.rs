//! Inbound calls: webhooks to stored events and jobs, routing, IVR, the operator API.

mod api;
mod bench;
mod ivr;
mod routing;
mod webhooks;
pub mod world;
