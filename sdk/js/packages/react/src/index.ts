//! `@gatehouse/react`: provider, hooks and accessible components. Import the styles once:
//! `import '@gatehouse/react/styles.css'` (every colour, radius and font is a CSS variable).

export {
  GatehouseProvider,
  useAuth,
  useGatehouse,
  useOrganization,
  useUser,
} from './context.js';
export type { AuthState, GatehouseProviderProps, OrganizationState, UserState } from './context.js';
export { SignIn } from './sign-in.js';
export type { SignInProps } from './sign-in.js';
export { SignUp } from './sign-up.js';
export type { SignUpProps } from './sign-up.js';
export { UserButton, displayName } from './user-button.js';
export type { UserButtonProps } from './user-button.js';
export { OrganizationSwitcher } from './organization-switcher.js';
export type { OrganizationSwitcherProps } from './organization-switcher.js';
export { MfaEnrolment } from './mfa-enrolment.js';
export type { MfaEnrolmentProps } from './mfa-enrolment.js';
export { Protect } from './protect.js';
export type { ProtectProps } from './protect.js';
export { messageFor } from './messages.js';
export { Gatehouse, GatehouseError } from '@gatehouse/js';
