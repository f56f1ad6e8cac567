//! Simulated sticks: the firmware's emulator (one model of it, shared by tests, the
//! demo and the uhid stick), a virtual USB stick through Linux uhid, and the terminal
//! display of a virtual stick. Nothing here is needed to drive a real stick.

pub mod emulator;
pub mod uhid;
pub mod virtual_display;
