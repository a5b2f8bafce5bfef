//! "Did you mean `maxPods`?": the known name nearest to a misspelt one.

/// The candidate nearest to `given`, if one is near enough to be what was meant: case, `-` and
/// `_` are ignored (`max_pods`, `MaxPods`), then up to one edit per four characters (at most
/// three; an edit is an insertion, deletion, substitution or swap of neighbours). A name of
/// three characters or fewer must match but for case (`gpu` is not a misspelt `cpu`).
/// The first of equally near candidates wins.
pub(super) fn nearest<'a>(
    given: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let given = normalized(given);
    // Longer input is no misspelt field name, and would cost quadratic time.
    if given.is_empty() || given.len() > 64 {
        return None;
    }
    let limit = (given.len() / 4).min(3);
    candidates
        .into_iter()
        .map(|name| (edit_distance(&given, &normalized(name)), name))
        .filter(|(distance, _)| *distance <= limit)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, name)| name)
}

fn normalized(s: &str) -> Vec<char> {
    s.chars()
        .filter(|c| !matches!(c, '-' | '_'))
        .flat_map(char::to_lowercase)
        .collect()
}

/// Edits from `a` to `b`, counting a swap of neighbours as one (optimal string alignment).
fn edit_distance(a: &[char], b: &[char]) -> usize {
    // rows[i][j]: distance between a[..i] and b[..j]; three rows are kept.
    let width = b.len() + 1;
    let mut before: Vec<usize> = vec![0; width];
    let mut previous: Vec<usize> = (0..width).collect();
    let mut current: Vec<usize> = vec![0; width];
    for i in 1..=a.len() {
        current[0] = i;
        for j in 1..width {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (previous[j] + 1)
                .min(current[j - 1] + 1)
                .min(previous[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(before[j - 2] + 1);
            }
            current[j] = best;
        }
        std::mem::swap(&mut before, &mut previous);
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}
