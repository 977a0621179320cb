export { dailySupimBackup } from './daily-supim';
