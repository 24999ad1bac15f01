//! Provider truth (issue 11): every documented callback shape, outcomes from
//! what each leg did, reconciliation through the providers' REST APIs, and
//! expired recording links refreshed.

mod callback_shapes;
mod expired_links;
pub(super) mod leg_outcomes;
mod reconciliation;
