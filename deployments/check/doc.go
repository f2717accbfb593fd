// Package check holds the tests of wahook's Prometheus alert rules and
// Grafana dashboard (deployments/prometheus, deployments/grafana). It is a
// module of its own so that Prometheus's rule and PromQL parsers, and
// everything they import, stay out of wahook's module.
package check
