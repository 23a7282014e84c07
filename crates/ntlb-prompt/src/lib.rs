//! CoOp prompt learning with the NTLB explainability loss.

pub mod parity;
