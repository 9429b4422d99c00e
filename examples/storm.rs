//! Retry storm simulation: how much load retries add during an outage, and how fast
//! clients that contend for one resource finish under each backoff schedule.
//!
//! Both studies drive the real `RetryLayer` around a fake backend on paused tokio time, so
//! a run takes seconds of wall time and gives the same figures every time.
//!
//! ```text
//! cargo run --release --example storm           # tables, and the plot in docs/storm.svg
//! cargo run --release --example storm -- --csv  # CSV rows only
//! ```

#[path = "storm/sim.rs"]
mod sim;

use sim::{BudgetChoice, ContentionResult, OutageConfig, OutageResult, Schedule, SimError};
use std::fmt::Write as _;
use std::time::Duration;

/// The per-attempt failure rates of the outage study.
const FAILURE_RATES: [f64; 4] = [0.1, 0.3, 0.5, 1.0];

/// The client counts of the contention study.
const CLIENT_COUNTS: [u32; 3] = [10, 50, 100];

/// The seed of every run, so that the figures are reproducible.
const SEED: u64 = 7;

/// The path of the plot, relative to the crate root.
const PLOT_PATH: &str = "docs/storm.svg";

fn main() -> Result<(), SimError> {
    let csv = match std::env::args().nth(1).as_deref() {
        None => false,
        Some("--csv") => true,
        Some(other) => {
            return Err(format!("unknown argument {other:?}; the only option is --csv").into());
        }
    };

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()?;
    let (outage, contention) = runtime.block_on(run_studies())?;

    if csv {
        print_csv(&outage, &contention);
    } else {
        print_tables(&outage, &contention);
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(PLOT_PATH);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, plot_svg(&outage, &contention))?;
        println!("\nplot written to {}", path.display());
    }
    Ok(())
}

/// One row of the outage study.
struct OutageRow {
    budget: BudgetChoice,
    failure_rate: f64,
    result: OutageResult,
}

/// One row of the contention study.
struct ContentionRow {
    schedule: Schedule,
    clients: u32,
    result: ContentionResult,
}

async fn run_studies() -> Result<(Vec<OutageRow>, Vec<ContentionRow>), SimError> {
    let mut outage = Vec::new();
    for budget in BudgetChoice::ALL {
        for failure_rate in FAILURE_RATES {
            let config = OutageConfig {
                requests_per_second: 1000,
                duration: Duration::from_secs(60),
                failure_rate,
                max_attempts: 3,
                seed: SEED,
            };
            let result = sim::run_outage(config, budget).await?;
            outage.push(OutageRow {
                budget,
                failure_rate,
                result,
            });
        }
    }

    let mut contention = Vec::new();
    for schedule in Schedule::ALL {
        for clients in CLIENT_COUNTS {
            let result = sim::run_contention(schedule, clients, SEED).await?;
            contention.push(ContentionRow {
                schedule,
                clients,
                result,
            });
        }
    }
    Ok((outage, contention))
}

fn print_csv(outage: &[OutageRow], contention: &[ContentionRow]) {
    println!("study,policy,failure_rate,load_multiplier,success_rate");
    for row in outage {
        println!(
            "outage,{},{},{:.4},{:.4}",
            row.budget.name(),
            row.failure_rate,
            row.result.load_multiplier(),
            row.result.success_rate()
        );
    }
    println!("study,schedule,clients,total_calls,completion_ms");
    for row in contention {
        println!(
            "contention,{},{},{},{}",
            row.schedule.name(),
            row.clients,
            row.result.total_calls,
            row.result.completion.as_millis()
        );
    }
}

fn print_tables(outage: &[OutageRow], contention: &[ContentionRow]) {
    println!("Outage: 1000 requests/s for 60 s, max_attempts 3");
    println!(
        "{:<16} {:>12} {:>10} {:>10} {:>16} {:>13}",
        "policy", "failure rate", "requests", "attempts", "load multiplier", "success rate"
    );
    for row in outage {
        println!(
            "{:<16} {:>12} {:>10} {:>10} {:>16.3} {:>12.2}%",
            row.budget.name(),
            row.failure_rate,
            row.result.requests,
            row.result.attempts,
            row.result.load_multiplier(),
            row.result.success_rate() * 100.0
        );
    }

    println!(
        "\nContention: clients start together and each writes once with a compare-and-swap \
         ({} ms per call, backoff {} ms to {} ms)",
        sim::WRITE_LATENCY.as_millis(),
        sim::CONTENTION_BASE.as_millis(),
        sim::CONTENTION_CAP.as_millis()
    );
    println!(
        "{:<14} {:>8} {:>12} {:>14} {:>8} {:>20}",
        "schedule", "clients", "total calls", "completion ms", "gave up", "calls vs unjittered"
    );
    for row in contention {
        let baseline = contention
            .iter()
            .find(|other| other.schedule == Schedule::Exponential && other.clients == row.clients)
            .map_or(1, |other| other.result.total_calls.max(1));
        println!(
            "{:<14} {:>8} {:>12} {:>14} {:>8} {:>20.3}",
            row.schedule.name(),
            row.clients,
            row.result.total_calls,
            row.result.completion.as_millis(),
            row.result.gave_up,
            row.result.total_calls as f64 / baseline as f64
        );
    }
}

/// The colors of the plotted lines, one per policy or schedule.
const COLORS: [&str; 4] = ["#d62728", "#1f77b4", "#2ca02c", "#9467bd"];

/// The size of one panel of the plot, in SVG user units (pixels).
const PANEL_WIDTH: f64 = 420.0;
const PANEL_HEIGHT: f64 = 320.0;

/// The space around each panel's plotting area, for axes, labels and the legend.
const MARGIN_LEFT: f64 = 60.0;
const MARGIN_RIGHT: f64 = 20.0;
const MARGIN_TOP: f64 = 40.0;
const MARGIN_BOTTOM: f64 = 110.0;

/// One line of a panel: a name and its points in data coordinates.
struct Series {
    name: &'static str,
    points: Vec<(f64, f64)>,
}

/// One panel of the plot, with linear x and either linear or base-10 logarithmic y.
struct Panel {
    title: &'static str,
    x_label: &'static str,
    y_label: &'static str,
    x_ticks: Vec<f64>,
    y_ticks: Vec<f64>,
    log_y: bool,
    series: Vec<Series>,
}

/// Writes both studies as a two-panel SVG image.
fn plot_svg(outage: &[OutageRow], contention: &[ContentionRow]) -> String {
    let outage_panel = Panel {
        title: "Outage: load multiplier (max_attempts 3)",
        x_label: "per-attempt failure rate",
        y_label: "attempts per request",
        x_ticks: vec![0.0, 0.25, 0.5, 0.75, 1.0],
        y_ticks: vec![1.0, 1.5, 2.0, 2.5, 3.0],
        log_y: false,
        series: BudgetChoice::ALL
            .iter()
            .map(|&budget| Series {
                name: budget.name(),
                points: outage
                    .iter()
                    .filter(|row| row.budget == budget)
                    .map(|row| (row.failure_rate, row.result.load_multiplier()))
                    .collect(),
            })
            .collect(),
    };
    let contention_panel = Panel {
        title: "Contention: calls until every client wrote",
        x_label: "clients",
        y_label: "total calls (log scale)",
        x_ticks: vec![0.0, 25.0, 50.0, 75.0, 100.0],
        y_ticks: vec![10.0, 100.0, 1000.0, 10000.0],
        log_y: true,
        series: Schedule::ALL
            .iter()
            .map(|&schedule| Series {
                name: schedule.name(),
                points: contention
                    .iter()
                    .filter(|row| row.schedule == schedule)
                    .map(|row| (f64::from(row.clients), row.result.total_calls as f64))
                    .collect(),
            })
            .collect(),
    };

    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">"#,
        w = 2.0 * PANEL_WIDTH,
        h = PANEL_HEIGHT
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    draw_panel(&mut svg, &outage_panel, 0.0);
    draw_panel(&mut svg, &contention_panel, PANEL_WIDTH);
    svg.push_str("</svg>\n");
    svg
}

/// Appends one panel whose left edge is at `left`.
fn draw_panel(svg: &mut String, panel: &Panel, left: f64) {
    let plot_left = left + MARGIN_LEFT;
    let plot_right = left + PANEL_WIDTH - MARGIN_RIGHT;
    let plot_top = MARGIN_TOP;
    let plot_bottom = PANEL_HEIGHT - MARGIN_BOTTOM;

    let scale_y = |value: f64| if panel.log_y { value.log10() } else { value };
    let (x_min, x_max) = bounds(&panel.x_ticks, |value| value);
    let (y_min, y_max) = bounds(&panel.y_ticks, scale_y);
    let to_x =
        |value: f64| plot_left + (value - x_min) / (x_max - x_min) * (plot_right - plot_left);
    let to_y = |value: f64| {
        plot_bottom - (scale_y(value) - y_min) / (y_max - y_min) * (plot_bottom - plot_top)
    };

    let _ = writeln!(
        svg,
        r#"<text x="{}" y="20" text-anchor="middle" font-weight="bold">{}</text>"#,
        left + PANEL_WIDTH / 2.0,
        panel.title
    );
    let _ = writeln!(
        svg,
        r#"<rect x="{plot_left}" y="{plot_top}" width="{}" height="{}" fill="none" stroke="black"/>"#,
        plot_right - plot_left,
        plot_bottom - plot_top
    );

    for &tick in &panel.x_ticks {
        let x = to_x(tick);
        let _ = writeln!(
            svg,
            r##"<line x1="{x}" y1="{plot_top}" x2="{x}" y2="{plot_bottom}" stroke="#ddd"/><text x="{x}" y="{}" text-anchor="middle">{tick}</text>"##,
            plot_bottom + 15.0
        );
    }
    for &tick in &panel.y_ticks {
        let y = to_y(tick);
        let _ = writeln!(
            svg,
            r##"<line x1="{plot_left}" y1="{y}" x2="{plot_right}" y2="{y}" stroke="#ddd"/><text x="{}" y="{}" text-anchor="end">{tick}</text>"##,
            plot_left - 5.0,
            y + 4.0
        );
    }
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
        (plot_left + plot_right) / 2.0,
        plot_bottom + 32.0,
        panel.x_label
    );
    let _ = writeln!(
        svg,
        r#"<text transform="translate({},{}) rotate(-90)" text-anchor="middle">{}</text>"#,
        left + 15.0,
        (plot_top + plot_bottom) / 2.0,
        panel.y_label
    );

    for (index, series) in panel.series.iter().enumerate() {
        let color = COLORS[index % COLORS.len()];
        let points: Vec<String> = series
            .points
            .iter()
            .map(|&(x, y)| format!("{:.1},{:.1}", to_x(x), to_y(y)))
            .collect();
        let _ = writeln!(
            svg,
            r#"<polyline points="{}" fill="none" stroke="{color}" stroke-width="2"/>"#,
            points.join(" ")
        );
        for &(x, y) in &series.points {
            let _ = writeln!(
                svg,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{color}"/>"#,
                to_x(x),
                to_y(y)
            );
        }

        // The legend sits below the axis label, one entry per line.
        let legend_y = plot_bottom + 50.0 + 15.0 * index as f64;
        let _ = writeln!(
            svg,
            r#"<line x1="{plot_left}" y1="{legend_y}" x2="{}" y2="{legend_y}" stroke="{color}" stroke-width="2"/><text x="{}" y="{}">{}</text>"#,
            plot_left + 20.0,
            plot_left + 25.0,
            legend_y + 4.0,
            series.name
        );
    }
}

/// Returns the smallest and largest tick after `scale`, so that the ticks span the axis.
fn bounds(ticks: &[f64], scale: impl Fn(f64) -> f64) -> (f64, f64) {
    let scaled = ticks.iter().map(|&tick| scale(tick));
    let min = scaled.clone().fold(f64::INFINITY, f64::min);
    let max = scaled.fold(f64::NEG_INFINITY, f64::max);
    (min, max)
}
