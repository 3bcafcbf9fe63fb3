//! tern-serial: the serial-line front end of `tern serve`.
//!
//! # Orientation
//! - [`port`]: open and configure a line with termios (raw 8N1, no RTS/CTS or XON/XOFF, CLOCAL,
//!   9600 to 4000000 baud), poll-based reads that report hang-ups, bounded-time writes, settings
//!   restored on drop.
//! - [`editor`]: a pure byte → event state machine (echo, Backspace/DEL, CR/LF/CRLF, Ctrl-C,
//!   Ctrl-D, escape sequences and line noise dropped with a report, bounded line) and the
//!   `/command` parser.
//! - [`protocol`]: machine mode, one JSON object per line each way (documented there).
//! - [`server`]: [`Server`] runs the loop over a [`Backend`] (the model, implemented by the
//!   `tern` binary) and re-opens the line after a hang-up without touching backend state.
//!
//! ```no_run
//! use tern_serial::{Backend, Control, GenRequest, GenStats, Finish, LineConfig, PathOpener, ServeConfig, Server, Token};
//! struct Echo;
//! impl Backend for Echo {
//!     fn generate(&mut self, req: &GenRequest<'_>, on_token: &mut dyn FnMut(Token<'_>) -> Control)
//!         -> Result<GenStats, String> {
//!         let mut n = 0;
//!         for (i, w) in req.prompt.split(' ').enumerate() {
//!             n += 1;
//!             if on_token(Token { text: w, id: i as u32 }) == Control::Stop {
//!                 return Ok(GenStats { n_tokens: n, finish: Finish::Stopped });
//!             }
//!         }
//!         Ok(GenStats { n_tokens: n, finish: Finish::Eos })
//!     }
//!     fn reset(&mut self) {}
//!     fn set_system(&mut self, _: &str) {}
//!     fn set_temp(&mut self, _: f32) -> Result<(), String> { Ok(()) }
//!     fn stats(&self) -> String { String::new() }
//! }
//! let opener = PathOpener { path: "/dev/ttyGS0".into(), line: LineConfig::new(115_200).unwrap() };
//! let mut server = Server::new(Echo, opener, ServeConfig::default());
//! let exit = server.run().unwrap();
//! ```

#![forbid(unsafe_code)]

pub mod editor;
pub mod port;
pub mod protocol;
pub mod server;

pub use editor::{Command, Event, Input, LineEditor, Noise, parse_input};
pub use port::{LineConfig, ReadOutcome, SerialPort, supported_bauds};
pub use protocol::{PROTOCOL, Request, Response, parse_request};
pub use server::{
    Backend, Control, Exit, Finish, GenRequest, GenStats, Mode, Opener, PathOpener, ServeConfig,
    ServeStats, Server, Token,
};
