//! nftables policy: the ruleset as typed data ([`model`]), built from the spec and the span ([`build`],
//! the compiled rules of both families in [`policy`]),
//! rendered to `nft -f -` text ([`render`]), compared with the listed table ([`observe`]), changed
//! chain by chain where it can ([`delta`]) and applied atomically ([`apply`]).

pub mod apply;
pub mod build;
pub mod delta;
pub mod elements;
mod hosts;
pub mod model;
pub mod observe;
pub mod policy;
pub mod render;
