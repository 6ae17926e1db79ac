// SPDX-License-Identifier: GPL-2.0
//! C ABI replacing arch/um/os-Linux/execvp.c.
