//! The verdict: when matches add up to cutting a stream. For now the policy window (used by
//! `hashgate scan` and logged by `serve`); cutting, blocking and the delay buffer build on it.

pub mod policy;
