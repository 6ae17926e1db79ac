// SPDX-License-Identifier: GPL-2.0
//! The queue of mmap/munmap/mprotect requests in a stub data area, as
//! `skas/mem.c` keeps it: requests are merged with the previous one when
//! they extend it, a full queue is run before another request is added,
//! and an error of the stub is kept (as a negative count) until the next
//! flush reports it, while later requests are dropped.
//!
//! Running the stub is the caller's [`StubRunner`], so the same logic
//! serves the kernel (where a failure to run the stub is fatal) and tests.

use core::ffi::{c_int, c_ulong};

use crate::stub::{MmId, STUB_SYSCALLS, StubData, StubSyscall, syscall_type};

/// Runs the stub of an address space and reports its failures.
pub trait StubRunner {
    /// Runs the stub's syscall handler in `pid` and waits for it: it
    /// returns only once the stub trapped (the kernel's runner does not
    /// return otherwise).
    fn run(&mut self, pid: c_int);
    /// Reports the request the stub failed on.
    fn report_error(&mut self, mm: &MmId, data: &StubData);
}

/// One address space's request queue: its `mm_id`, its data area (the
/// kernel's view) and the runner of its stub.
pub struct Queue<'a> {
    pub mm: &'a mut MmId,
    pub data: &'a mut StubData,
    pub runner: &'a mut dyn StubRunner,
}

impl Queue<'_> {
    /// Hands the queued requests to the stub and runs it. The count
    /// becomes 0, or the stub's (negative) error. Returns the new count.
    fn run_stub(&mut self) -> c_int {
        self.data.syscall_data_len = self.mm.syscall_data_len;
        self.runner.run(self.mm.pid);
        // The stub stored the result of the failed call, or 0. Like the C
        // layer, only a negative value counts as an error (truncated to an
        // int, as the C stores it).
        if self.data.err < 0 {
            self.runner.report_error(self.mm, self.data);
            self.mm.syscall_data_len = self.data.err as c_int;
        } else {
            self.mm.syscall_data_len = 0;
        }
        self.mm.syscall_data_len
    }

    /// Runs the queue if anything is in it: 0, or the error of the stub
    /// (now, or kept from an earlier run), which is then forgotten.
    pub fn flush(&mut self) -> c_int {
        if self.mm.syscall_data_len == 0 {
            return 0;
        }
        if self.mm.syscall_data_len < 0 {
            let res = self.mm.syscall_data_len;
            self.mm.syscall_data_len = 0;
            return res;
        }
        let res = self.run_stub();
        self.mm.syscall_data_len = 0;
        res
    }

    /// A zeroed slot for a new request (the queue is run first if full).
    /// After an error, a dummy slot that the stub never sees, so the error
    /// is kept.
    pub fn alloc(&mut self) -> &mut StubSyscall {
        if self.mm.syscall_data_len > 0 && self.mm.syscall_data_len as usize == STUB_SYSCALLS {
            self.run_stub();
        }
        let idx = if self.mm.syscall_data_len < 0 {
            0
        } else {
            self.mm.syscall_data_len += 1;
            self.mm.syscall_data_len as usize - 1
        };
        let sc = &mut self.data.syscall_data.0[idx];
        *sc = StubSyscall::default();
        sc
    }

    /// The last queued request, if it is of `kind` and ends at `addr`.
    fn previous(&mut self, kind: u32, addr: c_ulong) -> Option<&mut StubSyscall> {
        if self.mm.syscall_data_len <= 0 {
            return None;
        }
        let sc = &mut self.data.syscall_data.0[self.mm.syscall_data_len as usize - 1];
        (sc.syscall == kind && sc.mem.addr.wrapping_add(sc.mem.length) == addr).then_some(sc)
    }

    /// Queues `mmap(virt, len, prot, MAP_SHARED | MAP_FIXED, fd, offset)`.
    pub fn map(
        &mut self,
        virt: c_ulong,
        len: c_ulong,
        prot: c_int,
        fd: c_int,
        offset: u64,
    ) -> c_int {
        if let Some(sc) = self.previous(syscall_type::MMAP, virt) {
            if sc.mem.prot == prot
                && sc.mem.fd == fd
                && sc.mem.offset == offset.wrapping_sub(sc.mem.length) as c_ulong
            {
                sc.mem.length += len;
                return 0;
            }
        }
        let sc = self.alloc();
        sc.syscall = syscall_type::MMAP;
        sc.mem.addr = virt;
        sc.mem.length = len;
        sc.mem.prot = prot;
        sc.mem.fd = fd;
        sc.mem.offset = offset as c_ulong;
        0
    }

    /// Queues `munmap(addr, len)`.
    pub fn unmap(&mut self, addr: c_ulong, len: c_ulong) -> c_int {
        if let Some(sc) = self.previous(syscall_type::MUNMAP, addr) {
            sc.mem.length += len;
            return 0;
        }
        let sc = self.alloc();
        sc.syscall = syscall_type::MUNMAP;
        sc.mem.addr = addr;
        sc.mem.length = len;
        0
    }

    /// Queues `mprotect(addr, len, prot)`.
    pub fn protect(&mut self, addr: c_ulong, len: c_ulong, prot: c_int) -> c_int {
        if let Some(sc) = self.previous(syscall_type::MPROTECT, addr) {
            if sc.mem.prot == prot {
                sc.mem.length += len;
                return 0;
            }
        }
        let sc = self.alloc();
        sc.syscall = syscall_type::MPROTECT;
        sc.mem.addr = addr;
        sc.mem.length = len;
        sc.mem.prot = prot;
        0
    }
}
