// SPDX-License-Identifier: GPL-2.0
//! The in-guest test cases, in the order they run.

mod console;
mod dynexec;
mod fpstate;
mod ipc;
mod isolated;
mod memory;
mod process;
mod signals;
mod signals_load;
mod sigstack;
pub mod storage;
mod threads;
mod timers;
mod trace;

use std::cell::RefCell;
use std::path::PathBuf;
use std::time::Duration;

use crate::ktap::Case;
use crate::sys;

/// Options of `uml-guest test`, and what the suite learned about its
/// environment at start.
pub struct Config {
    /// Host directory to mount with hostfs (`--hostfs-dir`).
    pub hostfs_dir: Option<String>,
    /// Seed of the hostfs data files (`--hostfs-seed`).
    pub hostfs_seed: u64,
    /// Block device to write and read back (`--ubd`).
    pub ubd: Option<PathBuf>,
    /// Seed of the pattern the guest writes to the block device (`--ubd-seed`).
    pub ubd_seed: u64,
    /// Seed of the pattern the host wrote before boot (`--ubd-host-seed`).
    pub ubd_host_seed: Option<u64>,
    /// Size the block device must have, in bytes (`--ubd-size`).
    pub ubd_size: Option<u64>,
    /// Number of fork+execve in `fork_exec_stress` (`--stress-iters`).
    pub stress_iters: u32,
    /// Time limit of `fork_exec_stress` (`--stress-timeout`).
    pub stress_timeout: Duration,
    /// File name, in the hostfs directory, the host creates once it has done
    /// its checks of the running guest (`--host-sync`).
    pub host_sync: Option<String>,
    /// How long to wait for that file (`--host-sync-timeout`).
    pub host_sync_timeout: Duration,
    /// Running under UML (from /proc/cpuinfo).
    pub in_uml: bool,
    /// This program, to exec as a static binary.
    pub self_exe: PathBuf,
    /// Where hostfs is mounted, once it is.
    mounted: RefCell<Option<PathBuf>>,
}

impl Config {
    pub fn new() -> Config {
        Config {
            hostfs_dir: None,
            hostfs_seed: 0x686F_7374_6673,
            ubd: None,
            ubd_seed: 0x0075_6264,
            ubd_host_seed: None,
            ubd_size: None,
            stress_iters: 2000,
            stress_timeout: Duration::from_secs(300),
            host_sync: None,
            host_sync_timeout: Duration::from_secs(120),
            in_uml: sys::in_uml(),
            self_exe: sys::self_exe(),
            mounted: RefCell::new(None),
        }
    }

    /// Unmounts hostfs if a case mounted it; called when the suite ends.
    pub fn cleanup(&self) {
        if let Some(m) = self.mounted.borrow_mut().take() {
            if let Err(e) = nix::mount::umount(&m) {
                crate::diag!("umount {}: {e}", m.display());
            }
        }
    }
}

static SKAS_MODE: Case<Config> = Case {
    name: "skas_mode",
    run: process::skas_mode,
};
static FORK_WAIT: Case<Config> = Case {
    name: "fork_wait",
    run: process::fork_wait,
};
static EXEC: Case<Config> = Case {
    name: "exec",
    run: process::exec,
};
static PIPES: Case<Config> = Case {
    name: "pipes",
    run: ipc::pipes,
};
static SIGNALS: Case<Config> = Case {
    name: "signals",
    run: signals::signals,
};
static THREADS: Case<Config> = Case {
    name: "threads",
    run: threads::threads,
};
static HOSTFS: Case<Config> = Case {
    name: "hostfs",
    run: storage::hostfs,
};
static UBD: Case<Config> = Case {
    name: "ubd",
    run: storage::ubd,
};
static FORK_EXEC_STRESS: Case<Config> = Case {
    name: "fork_exec_stress",
    run: process::fork_exec_stress,
};
static FORK_STORM: Case<Config> = Case {
    name: "fork_storm",
    run: memory::fork_storm,
};
static MM_TORTURE: Case<Config> = Case {
    name: "mm_torture",
    run: memory::mm_torture,
};
static THREADS_MM: Case<Config> = Case {
    name: "threads_mm",
    run: memory::threads_mm,
};
static SIGNAL_STACK: Case<Config> = Case {
    name: "signal_stack",
    run: sigstack::signal_stack,
};
static PTRACE: Case<Config> = Case {
    name: "ptrace",
    run: trace::ptrace,
};
static EXEC_DYNAMIC: Case<Config> = Case {
    name: "exec_dynamic",
    run: dynexec::exec_dynamic,
};
static FP_STATE: Case<Config> = Case {
    name: "fp_state",
    run: fpstate::fp_state,
};
static TIMERS: Case<Config> = Case {
    name: "timers",
    run: timers::timers,
};
static SIGNALS_LOAD: Case<Config> = Case {
    name: "signals_load",
    run: signals_load::signals_load,
};
static CONSOLE_HEAVY: Case<Config> = Case {
    name: "console_heavy",
    run: console::console_heavy,
};
static HOST_SYNC: Case<Config> = Case {
    name: "host_sync",
    run: storage::host_sync,
};

/// All cases; `host_sync` runs only when `--host-sync` is given and always
/// last, so the host checks the guest after everything else ran.
pub fn all() -> Vec<&'static Case<Config>> {
    vec![
        &SKAS_MODE,
        &FORK_WAIT,
        &EXEC,
        &PIPES,
        &SIGNALS,
        &THREADS,
        &HOSTFS,
        &UBD,
        &FORK_EXEC_STRESS,
        &FORK_STORM,
        &MM_TORTURE,
        &THREADS_MM,
        &SIGNAL_STACK,
        &PTRACE,
        &EXEC_DYNAMIC,
        &FP_STATE,
        &TIMERS,
        &SIGNALS_LOAD,
        &CONSOLE_HEAVY,
        &HOST_SYNC,
    ]
}
