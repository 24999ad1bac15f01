//! Inbound calls: webhooks to stored events and jobs, routing, IVR, the operator API.

mod api;
mod bench;
mod bridging;
mod ivr;
mod routing;
mod scripted_twilio;
mod webhooks;
pub mod world;
