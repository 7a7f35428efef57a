// The order both sorts (sort.wgsl, radix_sort.wgsl) put f32 keys in, as an
// unsigned key that ascends as the floats descend: larger floats first,
// −0 equal to +0, and every NaN first (as the largest key, where
// torch.sort(descending=True) puts them). No float arithmetic touches the
// keys, so no device can flush or reorder them.

// f32 bits → the unsigned sort key.
fn to_order(bits: u32) -> u32 {
    let magnitude = bits & 0x7FFFFFFFu;
    if (magnitude > 0x7F800000u) {
        return 0u;                       // NaN, of either sign
    }
    if (magnitude == 0u) {
        return 0x7FFFFFFFu;              // −0 and +0: ~(0 | 0x80000000)
    }
    let ascending = select(bits | 0x80000000u, ~bits, (bits & 0x80000000u) != 0u);
    return ~ascending;
}

// The unsigned sort key → f32 bits: ±0 come back as +0, NaNs as 0x7FFFFFFF.
fn from_order(order: u32) -> u32 {
    let ascending = ~order;
    return select(~ascending, ascending & 0x7FFFFFFFu, (ascending & 0x80000000u) != 0u);
}
