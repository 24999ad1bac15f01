//! The seams between inbound, after-call and outbound: the providers' REST
//! clients behind one telephony port, and whole journeys through the real
//! webhooks, workers and API.

mod agent_reach;
pub(crate) mod exotel_rest;
pub(crate) mod outbound_journey;
mod overflow_callback;
mod recording_journey;
