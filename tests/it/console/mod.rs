//! The operator's surfaces beyond the CLI: `/metrics`, the OpenAPI document
//! and the web console.

mod browser;
mod metrics;
mod openapi;
mod pages;
