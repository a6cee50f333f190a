//! The file datastore as every gingham component sees it (docs/file-datastore.md): one layout
//! ([`layout`]: which path holds what and who writes it), one way to list manifest files
//! ([`files`]), one recursive change watch ([`watch`]) and one crash-safe write ([`atomic`]). The
//! operator, the node agent, the lab and the `gingham` CLI all go through it, so the directory's
//! shape is written down once. It knows nothing of Kubernetes: objects are the callers' business.

pub mod atomic;
pub mod files;
pub mod layout;
pub mod watch;
