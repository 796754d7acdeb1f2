//! Bar charts drawn on the server as SVG geometry (no script, no CDN, nothing the CSP must
//! allow): the template draws each bar as a `<rect>` with a `<title>`, and the same numbers
//! are in a table beside the chart for screen readers and for copying.

use minijinja::{Value, context};

/// The drawing area (SVG user units; the image scales to its box).
pub(crate) const WIDTH: u32 = 600;
pub(crate) const HEIGHT: u32 = 160;
/// Room under the bars for the first and last dates.
const BASELINE: u32 = 140;

#[derive(Debug)]
pub(crate) struct Bar {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
    pub date: String,
    pub value: i64,
}

#[derive(Debug)]
pub(crate) struct BarChart {
    /// The catalogue key of the series' name.
    pub name: &'static str,
    /// A CSS class giving the bars their colour.
    pub class: &'static str,
    pub total: i64,
    pub max: i64,
    pub bars: Vec<Bar>,
    pub first_date: String,
    pub last_date: String,
    pub width: u32,
    pub height: u32,
    pub baseline: u32,
}

impl BarChart {
    /// What the template draws.
    pub(crate) fn value(&self) -> Value {
        let bars: Vec<Value> = self
            .bars
            .iter()
            .map(|bar| {
                context! {
                    x => bar.x, y => bar.y, width => bar.width, height => bar.height,
                    date => bar.date.clone(), value => bar.value,
                }
            })
            .collect();
        context! {
            name => self.name,
            class => self.class,
            total => self.total,
            max => self.max,
            bars => bars,
            first_date => self.first_date.clone(),
            last_date => self.last_date.clone(),
            width => self.width,
            height => self.height,
            baseline => self.baseline,
        }
    }
}

/// One bar per `(date, value)`, scaled so the largest fills the height (an all-zero series
/// draws flat bars one unit high, so the days still show).
pub(crate) fn bar_chart(
    name: &'static str,
    class: &'static str,
    points: &[(String, i64)],
) -> BarChart {
    let max = points.iter().map(|(_, value)| *value).max().unwrap_or(0).max(0);
    let count = u32::try_from(points.len()).unwrap_or(u32::MAX).max(1);
    let slot = WIDTH / count;
    let gap = (slot / 5).max(1);
    let bars = points
        .iter()
        .enumerate()
        .map(|(index, (date, value))| {
            let scaled = if max == 0 {
                0
            } else {
                u32::try_from((*value).max(0) * i64::from(BASELINE - 10) / max).unwrap_or(0)
            };
            let height = scaled.max(1);
            Bar {
                x: u32::try_from(index).unwrap_or(0) * slot + gap / 2,
                y: BASELINE - height,
                width: slot.saturating_sub(gap).max(1),
                height,
                date: date.clone(),
                value: *value,
            }
        })
        .collect();
    BarChart {
        name,
        class,
        total: points.iter().map(|(_, value)| *value).sum(),
        max,
        bars,
        first_date: points.first().map(|(date, _)| date.clone()).unwrap_or_default(),
        last_date: points.last().map(|(date, _)| date.clone()).unwrap_or_default(),
        width: WIDTH,
        height: HEIGHT,
        baseline: BASELINE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_largest_bar_fills_the_chart_and_others_scale_with_it() {
        let points: Vec<(String, i64)> =
            vec![("2026-12-01".into(), 0), ("2026-12-02".into(), 5), ("2026-12-03".into(), 10)];
        let chart = bar_chart("admin.overview.sign_ins", "bar-sign-ins", &points);
        assert_eq!((chart.total, chart.max), (15, 10));
        let heights: Vec<u32> = chart.bars.iter().map(|bar| bar.height).collect();
        assert_eq!(heights, [1, 65, 130]);
        assert!(chart.bars.iter().all(|bar| bar.y + bar.height == BASELINE));
        assert!(chart.bars.windows(2).all(|pair| pair[0].x + pair[0].width < pair[1].x));
        assert!(chart.bars.last().is_some_and(|bar| bar.x + bar.width <= WIDTH));
        assert_eq!(
            (chart.first_date.as_str(), chart.last_date.as_str()),
            ("2026-12-01", "2026-12-03")
        );
    }
}
