//! A network link in front of one loopback server: the kernel's traffic control (an `htb`
//! class on `lo`, filtered on the server's source port) holds everything the server sends to
//! a fixed rate, shared by all its connections as a real uplink is. Nothing relays the bytes,
//! so the link costs no CPU, and the rate holds from the first byte. (nginx's `limit_rate`,
//! used before, lets a response send a whole second's worth before it starts to limit: an
//! 8 MiB layer behind "100 MiB/s" went through at 270-350 MB/s.)
//!
//! Needs root and `tc` with `htb` and `u32`; only one link at a time, since it owns `lo`'s
//! root qdisc. Everything else on loopback keeps its speed (the default class is unlimited).

use std::net::SocketAddr;
use std::process::Command;

use crate::Result;

pub struct ShapedLink {
    /// Bytes per second.
    pub rate: u64,
}

impl ShapedLink {
    /// Holds what `server` sends to `bytes_per_s`, until dropped.
    pub fn in_front_of(server: SocketAddr, bytes_per_s: u64) -> Result<ShapedLink> {
        let port = server.port().to_string();
        let bits = format!("{}bit", bytes_per_s * 8);
        // A large r2q keeps htb's quantum sane for loopback's 64 KiB packets.
        let root = ["qdisc", "add", "dev", "lo", "root", "handle", "1:", "htb"];
        tc(&[&root[..], &["default", "20", "r2q", "1000"]].concat())?;
        let link = ShapedLink { rate: bytes_per_s };
        let class = ["class", "add", "dev", "lo", "parent", "1:", "classid"];
        tc(&[&class[..], &["1:20", "htb", "rate", "100gbit"]].concat())?;
        tc(&[&class[..], &["1:10", "htb", "rate", &bits]].concat())?;
        tc(&[
            "filter", "add", "dev", "lo", "parent", "1:", "protocol", "ip", "prio", "1", "u32",
            "match", "ip", "sport", &port, "0xffff", "flowid", "1:10",
        ])?;
        Ok(link)
    }
}

impl Drop for ShapedLink {
    fn drop(&mut self) {
        let _ = tc(&["qdisc", "del", "dev", "lo", "root"]);
    }
}

fn tc(args: &[&str]) -> Result<()> {
    let out = Command::new("tc").args(args).output().map_err(|e| {
        format!(
            "tc {}: {e} (a shaped upstream link needs iproute2's tc)",
            args.join(" ")
        )
    })?;
    if !out.status.success() {
        return Err(format!(
            "tc {}: {} (a shaped upstream link needs root, htb and u32, and no other qdisc on lo)",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )
        .into());
    }
    Ok(())
}
