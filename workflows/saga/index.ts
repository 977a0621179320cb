export { AbortHandler } from './abort';
export { Compensations, type CompensationKind, type Pushed } from './compensations';
export { commonOptions, forever, long, quick, type CommonOptions } from './profiles';
export { sendReportSafely } from './report';
export { Stepper, type StepProgress, type StepperOptions } from './stepper';
