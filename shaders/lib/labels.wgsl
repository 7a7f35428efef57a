// Class-index labels as every softmax kernel reads them. The including
// kernel declares `status: atomic<u32>`, which the host reads back.

// The class `y` stands for, or −1 when it does not count: the ignore value
// (when `has_ignore`), or a label outside [0, classes), which also sets bit 0
// of `status`.
fn checked_label(y: i32, classes: u32, has_ignore: u32, ignore_index: i32) -> i32 {
    if (has_ignore != 0u && y == ignore_index) {
        return -1;
    }
    if (y < 0 || u32(y) >= classes) {
        atomicOr(&status, 1u);
        return -1;
    }
    return y;
}
