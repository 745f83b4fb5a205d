// Child-process entry of probeCuda(): prints the probe as JSON on stdout.
import { probeCudaInProcess } from './cuda-part.js';

process.stdout.write(JSON.stringify(probeCudaInProcess()) + '\n');
