//! Splitting on 400 and 413: a batch the destination refuses as a whole is sent again as two
//! halves, down to single records, so that the records at fault are found and rejected alone.

/// The refused records of a reply, by their position in the batch; a position outside the
/// request is ignored.
pub(super) fn refused_in(part: &[usize], refused: Vec<(usize, String)>) -> Vec<(usize, String)> {
    refused
        .into_iter()
        .filter_map(|(i, reason)| part.get(i).map(|&at| (at, reason)))
        .collect()
}

pub(super) fn push_halves(pending: &mut Vec<Vec<usize>>, mut part: Vec<usize>) {
    let second = part.split_off(part.len() / 2);
    // Pushed in reverse so the first half is tried first.
    pending.push(second);
    pending.push(part);
}
