import BackupCLI
import BackupCore
import CMalloc
import Foundation

// glibc hands out every allocation of 128 KiB or more (the pipeline's blocks, download buffers) as fresh pages
// from mmap and gives them back with munmap when freed: a page fault per page touched, and a TLB shootdown
// across threads per free. Measured on a 492 MiB Qdrant backup: 1.4 s of system time, 0.72 s with these two
// settings, peak RSS unchanged (every pipeline is bounded, so what is kept for reuse is too).
_ = mallopt(M_MMAP_THRESHOLD, 64 << 20)
_ = mallopt(M_TRIM_THRESHOLD, 256 << 20)
// One arena a core (glibc's default is eight): with the two settings above each arena keeps what its threads
// freed, and the engine runs ~30 threads, so a drill of 30,000 objects peaked at 87.6 MiB of RSS over a 6.4 MB
// heap. With this: 61.6 MiB; a MongoDB backup (P7) 72.9 -> 57.2 MiB; P1, P8, P9, P10 unchanged in time and RSS.
_ = mallopt(M_ARENA_MAX, Int32(max(2, min(64, ProcessInfo.processInfo.activeProcessorCount))))

// A tool that stops reading its stdin (mongorestore refusing its configuration) must fail the job with an
// error, not kill the process: see BrokenPipe.
BrokenPipe.ignore()

await KaleemBackup.runMain()
