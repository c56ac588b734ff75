"""Power and energy while timing: a sampler runs for the whole bench; each timed window takes the
samples that fell inside it. Jetson: tegrastats (or the INA3221 rails in sysfs); x86: Intel RAPL;
elsewhere power is reported as not available, with the reason."""
