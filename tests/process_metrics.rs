//! Process metrics as a backend sees them: the semantic conventions' names, units, instrument
//! types and temporality, plausible values for this very process, the process resource
//! attributes, and the switch that turns them off — decoded from a loopback receiver.

mod common;

use common::proto::metrics::v1::{metric::Data, number_data_point, AggregationTemporality, Metric};
use common::TestReceiver;
use plain_connect::{Resource, Settings, Telemetry};
use std::time::{Duration, Instant};

fn start(receiver: &TestReceiver, process_metrics: bool) -> Telemetry {
    let settings = Settings::builder()
        .export_url(receiver.endpoint())
        .export_token("t")
        .process_metrics(process_metrics)
        .build()
        .unwrap();
    Telemetry::start(settings, Resource::new("process-tests", "1")).unwrap()
}

fn values(metric: &Metric) -> Vec<(Option<String>, f64)> {
    let points = match metric.data.clone().unwrap() {
        Data::Sum(s) => s.data_points,
        Data::Gauge(g) => g.data_points,
        other => panic!("{}: unexpected {other:?}", metric.name),
    };
    points
        .iter()
        .map(|p| {
            let value = match p.value.unwrap() {
                number_data_point::Value::AsDouble(v) => v,
                number_data_point::Value::AsInt(i) => i as f64,
            };
            (common::string_attr(&p.attributes, "cpu.mode"), value)
        })
        .collect()
}

/// The instrument type and temporality a backend sees: "counter" (monotonic delta sum),
/// "updowncounter" (non-monotonic cumulative sum) or "gauge".
fn shape(metric: &Metric) -> &'static str {
    match metric.data.as_ref().unwrap() {
        Data::Sum(s) if s.is_monotonic => {
            assert_eq!(
                s.aggregation_temporality,
                AggregationTemporality::Delta as i32
            );
            "counter"
        }
        Data::Sum(s) => {
            assert_eq!(
                s.aggregation_temporality,
                AggregationTemporality::Cumulative as i32
            );
            "updowncounter"
        }
        Data::Gauge(_) => "gauge",
        _ => "other",
    }
}

/// A fixed amount of work (not of wall time: on a loaded host the thread may wait for a core),
/// at least `at_least` of CPU time, which the test measures with the thread's own clock.
fn burn_cpu(at_least: Duration) {
    let started = Instant::now();
    let mut x = 1u64;
    let mut rounds = 0u64;
    // Wall time is an upper bound of the CPU time used; the round count makes sure the work is
    // real even if the thread ran the whole time.
    while started.elapsed() < at_least || rounds < 400 {
        for _ in 0..10_000 {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
        rounds += 1;
    }
}

#[cfg(target_os = "linux")]
#[test]
fn process_metrics_follow_the_conventions_and_describe_this_process() {
    let _serial = common::serial();
    let receiver = TestReceiver::start();
    let telemetry = start(&receiver, true);
    burn_cpu(Duration::from_millis(60));
    telemetry.flush(Duration::from_secs(5)).unwrap();
    burn_cpu(Duration::from_millis(120));
    telemetry.flush(Duration::from_secs(5)).unwrap();

    let expected = [
        ("process.cpu.time", "s", "counter"),
        ("process.cpu.utilization", "1", "gauge"),
        ("process.memory.usage", "By", "updowncounter"),
        ("process.memory.virtual", "By", "updowncounter"),
        ("process.thread.count", "{thread}", "updowncounter"),
        (
            "process.unix.file_descriptor.count",
            "{file_descriptor}",
            "updowncounter",
        ),
        ("process.uptime", "s", "gauge"),
    ];
    for (name, unit, kind) in expected {
        let exports = receiver.metrics_named(name);
        assert_eq!(exports.len(), 2, "{name}: one point per collection");
        assert_eq!(exports[0].unit, unit, "{name}");
        assert_eq!(shape(&exports[0]), kind, "{name}");
        assert!(!exports[0].description.is_empty(), "{name}");
    }

    // CPU time: user and system, and it grows with the work done.
    let cpu: Vec<Vec<(Option<String>, f64)>> = receiver
        .metrics_named("process.cpu.time")
        .iter()
        .map(values)
        .collect();
    for window in &cpu {
        let mut modes: Vec<_> = window.iter().map(|(m, _)| m.clone().unwrap()).collect();
        modes.sort();
        assert_eq!(modes, ["system", "user"]);
    }
    let user = |w: &[(Option<String>, f64)]| {
        w.iter()
            .find(|(m, _)| m.as_deref() == Some("user"))
            .unwrap()
            .1
    };
    assert!(
        user(&cpu[0]) > 0.0,
        "CPU used up to the first export: {cpu:?}"
    );
    assert!(
        user(&cpu[1]) > 0.0,
        "the second window's delta holds the work done since: {cpu:?}"
    );
    let utilization = values(&receiver.metrics_named("process.cpu.utilization")[1]);
    assert!(
        utilization.iter().all(|(_, v)| (0.0..=1.0).contains(v)),
        "{utilization:?}"
    );
    assert!(utilization.iter().any(|(_, v)| *v > 0.0), "{utilization:?}");

    let last = |name: &str| values(receiver.metrics_named(name).last().unwrap())[0].1;
    assert!(
        last("process.thread.count") >= 2.0,
        "this thread and the exporter's"
    );
    assert!(last("process.memory.usage") > 1e6);
    assert!(last("process.memory.virtual") >= last("process.memory.usage"));
    assert!(last("process.unix.file_descriptor.count") >= 3.0);
    let uptime = receiver.metrics_named("process.uptime");
    let (first_uptime, last_uptime) = (values(&uptime[0])[0].1, values(&uptime[1])[0].1);
    assert!(
        first_uptime > 0.0 && last_uptime > first_uptime,
        "{first_uptime} {last_uptime}"
    );

    let resource = receiver.resource_metrics()[0].resource.clone().unwrap();
    assert_eq!(
        common::int_attr(&resource.attributes, "process.pid"),
        Some(i64::from(std::process::id()))
    );
    let exe = std::env::current_exe().unwrap();
    assert_eq!(
        common::string_attr(&resource.attributes, "process.executable.name").as_deref(),
        exe.file_name().and_then(|n| n.to_str())
    );
    assert_eq!(
        common::string_attr(&resource.attributes, "process.runtime.name").as_deref(),
        Some("rustc")
    );
    assert!(
        common::string_attr(&resource.attributes, "process.runtime.version")
            .is_some_and(|v| v.split('.').count() >= 3)
    );
    drop(telemetry);
}

#[test]
fn the_setting_and_the_variable_turn_them_off() {
    let _serial = common::serial();
    let off = Settings::default()
        .with_env_from(|name| {
            Ok((name == "PLAIN_CONNECT_PROCESS_METRICS").then(|| "false".to_owned()))
        })
        .unwrap();
    assert!(!off.process_metrics());
    assert!(Settings::default().process_metrics(), "on by default");

    let receiver = TestReceiver::start();
    let telemetry = start(&receiver, false);
    plain_connect::metrics::counter("test.process.off.marker")
        .build()
        .unwrap()
        .add(1, &[]);
    telemetry.flush(Duration::from_secs(5)).unwrap();
    drop(telemetry);
    let names: Vec<String> = receiver.metrics().into_iter().map(|m| m.name).collect();
    assert!(names.contains(&"test.process.off.marker".to_owned()));
    assert!(
        names.iter().all(|n| !n.starts_with("process.")),
        "process metrics off: {names:?}"
    );
}
