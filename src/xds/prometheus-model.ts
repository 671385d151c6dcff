// The io.prometheus.client wire types that Envoy's MetricsService carries
// (envoy/service/metrics/v3/metrics_service.proto imports them), declared
// here because @grpc/grpc-js-xds ships the Envoy protos without Prometheus's
// client_model. Only what a metrics report uses: families of counters,
// gauges, untyped values, summaries and histograms with their labels. Field
// numbers are those of the Prometheus protobuf exposition format, so an
// Envoy's metrics_service sink and a weft sidecar send the same bytes.
import type { INamespace } from 'protobufjs';

/** The import path metrics_service.proto names for these types. */
export const PROMETHEUS_MODEL_IMPORT = 'io/prometheus/client/metrics.proto';

const double = (id: number) => ({ type: 'double', id });
const uint64 = (id: number) => ({ type: 'uint64', id });

export const PROMETHEUS_MODEL: INamespace = {
  nested: {
    io: {
      nested: {
        prometheus: {
          nested: {
            client: {
              nested: {
                MetricType: { values: { COUNTER: 0, GAUGE: 1, SUMMARY: 2, UNTYPED: 3, HISTOGRAM: 4, GAUGE_HISTOGRAM: 5 } },
                LabelPair: { fields: { name: { type: 'string', id: 1 }, value: { type: 'string', id: 2 } } },
                Gauge: { fields: { value: double(1) } },
                Counter: { fields: { value: double(1) } },
                Untyped: { fields: { value: double(1) } },
                Quantile: { fields: { quantile: double(1), value: double(2) } },
                Summary: { fields: { sample_count: uint64(1), sample_sum: double(2), quantile: { rule: 'repeated', type: 'Quantile', id: 3 } } },
                Bucket: { fields: { cumulative_count: uint64(1), upper_bound: double(2) } },
                Histogram: { fields: { sample_count: uint64(1), sample_sum: double(2), bucket: { rule: 'repeated', type: 'Bucket', id: 3 } } },
                Metric: {
                  fields: {
                    label: { rule: 'repeated', type: 'LabelPair', id: 1 },
                    gauge: { type: 'Gauge', id: 2 },
                    counter: { type: 'Counter', id: 3 },
                    summary: { type: 'Summary', id: 4 },
                    untyped: { type: 'Untyped', id: 5 },
                    timestamp_ms: { type: 'int64', id: 6 },
                    histogram: { type: 'Histogram', id: 7 },
                  },
                },
                MetricFamily: {
                  fields: {
                    name: { type: 'string', id: 1 },
                    help: { type: 'string', id: 2 },
                    type: { type: 'MetricType', id: 3 },
                    metric: { rule: 'repeated', type: 'Metric', id: 4 },
                  },
                },
              },
            },
          },
        },
      },
    },
  },
};
