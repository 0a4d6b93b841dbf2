//! Point-to-point links (Chapter 2.4 of the book), each built on the one before:
//! fair-loss → stubborn → perfect.
//!
//! Every link is a struct whose methods are the book's handlers. A request
//! (`⟨ sl, Send | q, m ⟩`) is a method call on the link; an indication
//! (`⟨ sl, Deliver | p, m ⟩`) is what the receiving method returns to the
//! layer above. When a link runs as a module of its own, the layer above is
//! the user: its [`Module`](crate::runtime::Module) impl turns `send q text`
//! into a request and prints each indication as `deliver p text`.

pub mod fair_loss;
pub mod perfect;
pub mod stubborn;
