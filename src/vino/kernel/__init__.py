"""The reference kernel: device, buffer cache / VM, file system, scheduler, principals."""
