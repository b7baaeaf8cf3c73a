//! The HIS message contract (docs/his-interface.md): the HB1 envelope, instructions, results and
//! amounts. No IO; shared by the bridge, the HIS client library and the test tools.

pub mod amount;
pub mod envelope;
#[doc(hidden)]
pub mod fuzz;
pub mod his;
pub mod keyfile;
