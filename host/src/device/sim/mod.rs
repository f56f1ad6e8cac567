//! Simulated lights: the BlinkStick firmware's emulator (one model of it, shared by
//! tests, the demo and the uhid stick), blink(1) and Luxafor firmwares behind the
//! same bus, a WLED controller on loopback, a virtual USB stick through Linux uhid,
//! and the terminal display of a virtual stick. Nothing here is needed to drive a
//! real light.

pub mod blink1;
pub mod emulator;
pub mod luxafor;
pub mod uhid;
pub mod virtual_display;
pub mod wled;
