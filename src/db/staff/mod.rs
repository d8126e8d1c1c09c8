//! Support staff's queries: their accounts (sign-in lockout, second factor),
//! the audit log, and the failure log as staff see it (filters, keyset
//! pagination, notes, resolution, statistics).

mod accounts;
mod audit;
mod failures;

pub use accounts::*;
pub use audit::*;
pub use failures::*;
