//! One `Telephony` port over both providers: each call goes to the client of
//! the provider it names (`OutboundCall.provider`); a provider that is not
//! configured is a permanent error naming the variables to set. A call is
//! looked up or ended at the provider named; redirecting a live call is
//! Twilio's alone.

use std::sync::Arc;

use switchboard_jobs::ports::{CallDetails, OutboundCall, PlacedCall, PortError, PortFuture, Provider, Telephony};

#[derive(Default, Clone)]
pub struct TelephonyRouter {
    pub twilio: Option<Arc<dyn Telephony>>,
    pub exotel: Option<Arc<dyn Telephony>>,
}

impl TelephonyRouter {
    fn client(&self, provider: Provider) -> Result<&dyn Telephony, PortError> {
        let (client, variables) = match provider {
            Provider::Twilio => (&self.twilio, "TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN"),
            Provider::Exotel => (&self.exotel, "EXOTEL_ACCOUNT_SID, EXOTEL_API_KEY and EXOTEL_API_TOKEN"),
        };
        client.as_deref().ok_or_else(|| PortError::Permanent {
            message: format!("{provider:?} is not configured: set {variables} to place its calls"),
        })
    }
}

impl Telephony for TelephonyRouter {
    fn place_call<'a>(&'a self, call: &'a OutboundCall) -> PortFuture<'a, PlacedCall> {
        match self.client(call.provider) {
            Ok(client) => client.place_call(call),
            Err(error) => Box::pin(async move { Err(error) }),
        }
    }

    fn lookup_call<'a>(&'a self, provider: Provider, call_sid: &'a str) -> PortFuture<'a, CallDetails> {
        match self.client(provider) {
            Ok(client) => client.lookup_call(provider, call_sid),
            Err(error) => Box::pin(async move { Err(error) }),
        }
    }

    fn end_call<'a>(&'a self, provider: Provider, call_sid: &'a str) -> PortFuture<'a, ()> {
        match self.client(provider) {
            Ok(client) => client.end_call(provider, call_sid),
            Err(error) => Box::pin(async move { Err(error) }),
        }
    }

    fn redirect_call<'a>(&'a self, call_sid: &'a str, url: &'a str) -> PortFuture<'a, ()> {
        match self.client(Provider::Twilio) {
            Ok(client) => client.redirect_call(call_sid, url),
            Err(error) => Box::pin(async move { Err(error) }),
        }
    }
}
