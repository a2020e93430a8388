// English texts of the pages: the reference locale. Every other locale file has exactly these keys (type Messages).
// {name} is a value the page fills in (HTML-escaped); a template shows a text with {{t.key}} (text) or {{{t.key}}}
// (the text may hold markup such as <strong>; the values in it are still escaped). docs/theming.md lists the values.

export const en = {
  /** BCP 47 tag of this file's language: `<html lang>` and Content-Language. */
  lang: 'en',
  login: {
    title: 'Sign in',
    heading: 'Sign in',
    continueTo: 'to continue to <strong>{client}</strong>',
    someApplication: 'the application',
    userLabel: 'VAL user ID',
    passwordLabel: 'Password',
    submit: 'Sign in',
    failed: 'The VAL user ID or password is incorrect.',
    throttled: {
      one: 'Too many failed sign-in attempts. Try again in {seconds} second.',
      other: 'Too many failed sign-in attempts. Try again in {seconds} seconds.',
    },
    busy: 'This sign-in form is already being submitted. Please wait a moment and try again.',
    formExpired: 'Your sign-in form expired. Please try again.',
    noLongerValid: 'This sign-in request is no longer valid. Please try again.',
  },
  logout: {
    title: 'Sign out',
    heading: 'Sign out',
    question: 'Do you want to sign out of {site}?',
    confirm: 'Yes, sign me out',
    cancel: 'No, stay signed in',
  },
  loggedOut: {
    title: 'Signed out',
    heading: 'Signed out',
    everywhere: 'You have signed out of {site}.',
    // The person chose "stay signed in": only the client that asked was signed out.
    clientOnly: 'You have signed out of {client}. You are still signed in to {site}.',
    close: 'You can close this window now.',
  },
  /** The way back on the signed-out and error pages (IDMS_HOME_URL). */
  home: 'Go to the home page of {site}',
  /** Error pages: what happened (heading, what) and what the person can do (todo); the OAuth code goes in small print. */
  error: {
    detailsLabel: 'Details for support',
    reference: 'reference',
    pages: {
      invalid_client: {
        heading: 'Unknown application',
        what: 'The application that sent you here is not registered with {site}.',
        todo: 'Go back to the application and try again. If this keeps happening, contact the application’s support and give them the details below.',
      },
      invalid_redirect_uri: {
        heading: 'Sign-in stopped',
        what: 'The application that sent you here asked to be answered at an address that is not registered with {site}. For your safety, signing in stops here.',
        todo: 'Go back to the application and try again. If this keeps happening, contact the application’s support and give them the details below.',
      },
      unauthorized_client: {
        heading: 'Application not allowed',
        what: 'The application that sent you here may not use {site} at the moment.',
        todo: 'Contact the application’s support and give them the details below.',
      },
      invalid_request: {
        heading: 'Request not valid',
        what: 'The application that sent you here made a request that {site} cannot accept.',
        todo: 'Go back to the application and try again. If this keeps happening, contact the application’s support and give them the details below.',
      },
      login_expired: {
        heading: 'Sign-in expired',
        what: 'This sign-in request has expired or was opened in another browser.',
        todo: 'Go back to the application and start signing in again.',
      },
      request_too_large: {
        heading: 'Request too large',
        what: 'The request sent to {site} was too large.',
        todo: 'Go back and try again with shorter input.',
      },
      temporarily_unavailable: {
        heading: 'Temporarily unavailable',
        what: '{site} is temporarily unavailable.',
        todo: 'Please try again in a few seconds.',
      },
      server_error: {
        heading: 'Something went wrong',
        what: 'An unexpected error occurred at {site}.',
        todo: 'Please try again in a moment. If this keeps happening, contact the operator of {site} and give them the details below.',
      },
      other: {
        heading: 'Something went wrong',
        what: '{site} could not complete this request.',
        todo: 'Go back to the application and try again. If this keeps happening, contact the application’s support and give them the details below.',
      },
    },
  },
};

/** The shape every locale file has. */
export type Messages = typeof en;
/** A text that depends on a count (Intl.PluralRules categories; `other` is required). */
export type PluralText = { one?: string; other: string };
/** The error pages there are texts for; an OAuth code without its own page uses `other`. */
export type ErrorKind = keyof Messages['error']['pages'];
