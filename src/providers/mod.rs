//! The two telephony providers as we meet them: webhook authentication and
//! parsing, our answers (TwiML, Exotel JSON) and their REST APIs behind one
//! `Telephony` port.

pub mod exotel;
pub mod exotel_rest;
pub mod fields;
pub mod identifiers;
pub mod rest_client;
pub mod telephony_router;
pub mod twilio;
pub mod twilio_legs;
pub mod twilio_rest;
pub mod twiml;
