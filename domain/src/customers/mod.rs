//! Customers (leads): one per E.164 number per tenant.

pub(crate) mod bulk;
mod columns;
mod repo;
mod service;

pub use repo::{by_ids, count, find, list};
pub use service::{
    CustomerFilter, CustomerPatch, NewCustomer, by_phone, create, delete, get, merge, update,
};
